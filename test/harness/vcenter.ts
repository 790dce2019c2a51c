import fs from 'node:fs';
import path from 'node:path';
import { VCENTER_ENV, type AgentVcenter } from '../../src/sddc/agent-vcenter';
import type { Credentials } from '../../src/sddc/vcenter-login';
import { tempDir } from '../images/build';

/**
 * An agent's own vCenter configuration for a vcsim on the loopback (self-signed, so no certificate check),
 * its login in private files as an operator would give it: the environment of a spawned agent.
 */
export function agentVcenterEnv(vcenter: string, login: Credentials): Record<string, string> {
  const dir = tempDir('vmhub-vc-login-');
  const files = { username: path.join(dir, 'username'), password: path.join(dir, 'password') };
  fs.writeFileSync(files.username, `${login.username}\n`, { mode: 0o600 });
  fs.writeFileSync(files.password, `${login.password}\n`, { mode: 0o600 });
  return {
    [VCENTER_ENV.url]: vcenter,
    [VCENTER_ENV.insecure]: '1',
    [VCENTER_ENV.usernameFile]: files.username,
    [VCENTER_ENV.passwordFile]: files.password,
  };
}

/** The same vCenter, for a test that connects to it itself. */
export function testVcenter(vcenter: string, credentials: Credentials): AgentVcenter {
  return { url: new URL(vcenter).href, tls: { kind: 'insecure' }, credentials };
}
