import fs from 'node:fs';
import path from 'node:path';
import type { Config } from '../config';
import { VCENTER_ENV } from '../sddc/agent-vcenter';
import { libraryOf } from '../shared/sddc-target';
import { isLoopbackUrl } from '../shared/target-kinds/content-library';
import { loadTopology, type Topology } from '../topology/topology';
import type { ServiceSpec } from './service-spec';
import { vcsimBinary } from './tools';

/** One embedded vcsim: the first default SDDC naming its loopback port owns its folder; later ones share it. */
interface Vcsim {
  owner: string;
  url: URL;
  port: number;
  served: string[];
}

function loopbackVcsims(topology: Topology): Vcsim[] {
  const byPort = new Map<number, Vcsim>();
  for (const sddc of topology.sddcs) {
    const library = libraryOf(sddc.target);
    if (!library) continue;
    const url = new URL(library.vcenter);
    const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
    if (!isLoopbackUrl(url)) continue;
    const known = byPort.get(port);
    if (known) known.served.push(sddc.name);
    else byPort.set(port, { owner: sddc.name, url, port, served: [sddc.name] });
  }
  return [...byPort.values()];
}

/** The login the embedded vcsim of a default SDDC takes, from the services' environment (`east-3` → VMHUB_VC_EAST_3_…). */
function loginVariables(sddc: string): { username: string; password: string } {
  const prefix = `VMHUB_VC_${sddc.toUpperCase().replace(/-/g, '_')}`;
  return { username: `${prefix}_USERNAME`, password: `${prefix}_PASSWORD` };
}

const loginFiles = (state: string) => ({ username: path.join(state, '.username'), password: path.join(state, '.password') });

/**
 * One vcsim per loopback vCenter of the default SDDCs, each with its datastores under
 * `<dataDir>/vcsim/<sddc>` (vcsim keeps its inventory and libraries in memory: they start empty each
 * time). With VMHUB_VC_<SDDC>_USERNAME and _PASSWORD in the services' environment, vcsim accepts only that
 * login, which it reads from private files, so neither is on its command line; the agent's environment
 * (`agentVcenterEnv`) points at the same files. Without them it accepts any. Its startup line, which
 * prints the login, goes nowhere.
 */
export function vcsimServices(
  topology: Topology,
  dir: (name: string) => string,
  env: NodeJS.ProcessEnv,
): Array<() => ServiceSpec> {
  return loopbackVcsims(topology).map(({ owner, url, port }) => () => {
    const state = dir(`vcsim/${owner}`);
    const names = loginVariables(owner);
    const files = loginFiles(state);
    const login: string[] = [];
    if (env[names.username] && env[names.password]) {
      fs.mkdirSync(state, { recursive: true });
      fs.writeFileSync(files.username, env[names.username]!, { mode: 0o600 });
      fs.writeFileSync(files.password, env[names.password]!, { mode: 0o600 });
      login.push('-username', files.username, '-password', files.password);
    }
    return {
      name: `vcsim ${owner}`,
      port,
      url: url.href,
      dirs: [state],
      command: vcsimBinary(),
      args: ['-l', `127.0.0.1:${port}`, `-tls=${url.protocol === 'https:'}`, '-E', '/dev/null', ...login],
      // vcsim makes its datastores' folders in the temporary directory.
      env: { TMPDIR: state },
    };
  });
}

/**
 * The vCenter configuration of a default SDDC's agent whose vCenter is an embedded vcsim: its URL, no
 * certificate check (vcsim's is self-signed; allowed only on the loopback) and, when the vcsim was started
 * with a login, the files holding it. Empty for any other SDDC: its agent needs its own configuration.
 */
export function agentVcenterEnv(config: Config, sddc: string, env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const vcsim = loopbackVcsims(loadTopology(config.topologyPath, env)).find((v) => v.served.includes(sddc));
  if (!vcsim) return {};
  const out: Record<string, string> = { [VCENTER_ENV.url]: vcsim.url.href };
  if (vcsim.url.protocol === 'https:') out[VCENTER_ENV.insecure] = '1';
  const files = loginFiles(path.join(config.dataDir, 'vcsim', vcsim.owner));
  if (fs.existsSync(files.username) && fs.existsSync(files.password)) {
    out[VCENTER_ENV.usernameFile] = files.username;
    out[VCENTER_ENV.passwordFile] = files.password;
  }
  return out;
}
