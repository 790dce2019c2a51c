import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { msToNumber } from '@temporalio/common/lib/time';
import { WRITE_GRACE_MS } from '../src/engine/signals';
import { SHUTDOWN_GRACE } from '../src/temporal/worker';

const ROOT = path.resolve(__dirname, '..');

/** `docker-compose config` with only the given variables from the operator's side (no .env, no shell's). */
function composeConfig(args: string[], vars: Record<string, string> = {}): string {
  return execFileSync('docker-compose', ['-f', 'docker-compose.yml', '--project-directory', ROOT, 'config', ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...vars },
  });
}

/** The values of one key, `key: value` or a `key:` list of `- value`, in docker-compose's normalised output. */
function values(config: string, key: string): string[] {
  const found: string[] = [];
  let listIndent: number | undefined;
  for (const line of config.split('\n')) {
    const indent = line.length - line.trimStart().length;
    const item = /^\s*- (.*)$/.exec(line);
    if (listIndent !== undefined && item && indent >= listIndent) {
      found.push(item[1].trim());
      continue;
    }
    listIndent = undefined;
    const entry = new RegExp(`^(\\s*)${key}:\\s*(.*)$`).exec(line);
    if (!entry) continue;
    if (entry[2]) found.push(entry[2].trim());
    else listIndent = entry[1].length;
  }
  return found;
}

/** Each service's value of one of its own keys (two-space service names under `services:`), in the normalised output. */
function serviceValues(config: string, key: string): Map<string, string | undefined> {
  const found = new Map<string, string | undefined>();
  let inServices = false;
  let service: string | undefined;
  for (const line of config.split('\n')) {
    if (/^\S/.test(line)) inServices = line.startsWith('services:');
    if (!inServices) continue;
    const name = /^ {2}([\w-]+):\s*$/.exec(line);
    if (name) {
      service = name[1];
      found.set(service, undefined);
      continue;
    }
    const entry = new RegExp(`^ {4}${key}:\\s*(.+)$`).exec(line);
    if (service && entry) found.set(service, entry[1].trim());
  }
  return found;
}

/** A Go duration as compose writes it (`90s`, `1m30s`, `1m0.5s`), in milliseconds. */
function goDurationMs(text: string): number {
  const parts = [...text.matchAll(/(\d+(?:\.\d+)?)(h|m|s|ms)/g)];
  expect(parts.map((p) => p[0]).join('')).toBe(text);
  const unit = { h: 3_600_000, m: 60_000, s: 1000, ms: 1 } as const;
  return parts.reduce((sum, [, n, u]) => sum + Number(n) * unit[u as keyof typeof unit], 0);
}

const CREDENTIALS = {
  VMHUB_DC_EAST_ACCOUNT_KEY: 'ZWFzdC1rZXk=',
  VMHUB_DC_WEST_ACCOUNT_KEY: 'd2VzdC1rZXk=',
  VMHUB_DC_EAST_READ_SAS: 'sv=2023-11-03&sr=c&sp=rl&sig=east',
  VMHUB_DC_WEST_READ_SAS: 'sv=2023-11-03&sr=c&sp=rl&sig=west',
};

describe('docker-compose.yml', () => {
  it('is valid for docker-compose, offline', () => {
    expect(composeConfig(['--services']).trim().split('\n').sort()).toEqual(
      [
        'agent-east-1',
        'agent-east-2',
        'agent-west-1',
        'azurite-east',
        'azurite-west',
        'grafana',
        'jaeger',
        'mongodb',
        'otel-collector',
        'prometheus',
        'temporal',
        'vcsim-east-1',
        'vcsim-east-2',
        'vcsim-west-1',
        'worker',
      ].sort(),
    );
  });

  it('publishes every port on 127.0.0.1 only', () => {
    const ports = values(composeConfig([], CREDENTIALS), 'ports');
    expect(ports.length).toBeGreaterThanOrEqual(5);
    for (const port of ports) expect(port).toMatch(/^127\.0\.0\.1:\d+:\d+(\/tcp)?$/);
  });

  it('pins every image to a version', () => {
    const images = values(composeConfig([], CREDENTIALS), 'image');
    expect(images.length).toBe(15);
    for (const image of images) expect(image).toMatch(/:[^:/]*\d[^:/]*$/);
    expect(fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8')).toMatch(/^ARG NODE_IMAGE=node:22\.\d+\.\d+-/m);
  });

  it('takes every credential from the environment or a secret file, with none written in the file', () => {
    const config = composeConfig([], CREDENTIALS);
    // Storage keys and SAS tokens are secret files too: set in the operator's environment, they reach no container.
    for (const secret of Object.values(CREDENTIALS)) expect(config).not.toContain(secret);
    expect(values(config, 'AZURITE_ACCOUNTS')).toEqual([]);
    // MongoDB's root password and every catalog URI are secret files.
    expect(values(config, 'MONGO_INITDB_ROOT_PASSWORD_FILE')).toEqual(['/run/secrets/mongo-root-password']);
    expect(values(config, 'MONGODB_URI')).toEqual([]);
    // Azurite's published key would let anyone who reaches the port read every image.
    expect(fs.readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8')).not.toMatch(/Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50/);
  });

  it('gives the worker and every agent longer to stop than they take to drain', () => {
    // The SDK's shutdown grace for running activities, then a write already started may take its own grace.
    const drainMs = msToNumber(SHUTDOWN_GRACE) + WRITE_GRACE_MS;
    const grace = serviceValues(composeConfig([], CREDENTIALS), 'stop_grace_period');
    const workers = [...grace.keys()].filter((s) => s === 'worker' || s.startsWith('agent-'));
    expect(workers.sort()).toEqual(['agent-east-1', 'agent-east-2', 'agent-west-1', 'worker']);
    for (const service of workers) {
      const period = grace.get(service);
      expect({ service, period }).toEqual({ service, period: expect.any(String) });
      expect(goDurationMs(period!)).toBeGreaterThan(drainMs);
    }
  });

  describe('least privilege', () => {
    /** The normalised file as data: docker-compose's YAML read by the YAML library it runs on itself. */
    const compose = JSON.parse(
      execFileSync('python3', ['-c', 'import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))'], {
        input: composeConfig([], CREDENTIALS),
        encoding: 'utf8',
      }),
    ) as { services: Record<string, Service>; secrets?: Record<string, { file: string }> };
    interface Service {
      command?: string[] | string;
      environment?: Record<string, string>;
      secrets?: Array<{ source: string }>;
      volumes?: string[];
      cap_drop?: string[];
      security_opt?: string[];
    }
    const services = compose.services;
    const SDDCS = ['east-1', 'east-2', 'west-1'];
    const secretsOf = (name: string) => (services[name].secrets ?? []).map((s) => s.source).sort();

    it('gives each agent its own vCenter login and certificate as file secrets, nowhere else but its vcsim', () => {
      for (const sddc of SDDCS) {
        const agent = services[`agent-${sddc}`];
        expect(secretsOf(`agent-${sddc}`)).toEqual(
          [
            'catalog-agent-uri',
            'dc-east-read-sas',
            'dc-west-read-sas',
            'signing-public-key',
            `vcenter-${sddc}-cert`,
            `vcenter-${sddc}-password`,
            `vcenter-${sddc}-username`,
          ].sort(),
        );
        expect(agent.environment).toMatchObject({
          VMHUB_VCENTER_URL: `https://vcsim-${sddc}:8989/`,
          VMHUB_VCENTER_CA_FILE: `/run/secrets/vcenter-${sddc}-cert`,
          VMHUB_VCENTER_USERNAME_FILE: `/run/secrets/vcenter-${sddc}-username`,
          VMHUB_VCENTER_PASSWORD_FILE: `/run/secrets/vcenter-${sddc}-password`,
          VMHUB_TRUSTED_KEYS: '/run/secrets/signing-public-key',
        });
        // No login in its environment: neither the old per-SDDC variables nor any other SDDC's.
        const names = Object.keys(agent.environment!);
        expect(names.filter((n) => /^VMHUB_VC_|USERNAME$|PASSWORD$|ACCOUNT_KEY|^MONGODB_URI$/.test(n))).toEqual([]);
        expect(names).not.toContain('VMHUB_VCENTER_INSECURE_TLS');
        expect(agent.command).toEqual(['agent', sddc]);
        const users = Object.keys(services).filter((s) => secretsOf(s).some((x) => x.startsWith(`vcenter-${sddc}-`)));
        expect(users.sort()).toEqual([`agent-${sddc}`, `vcsim-${sddc}`]);
      }
      expect(secretsOf('worker')).toEqual(['catalog-control-uri', 'dc-east-account-key', 'dc-west-account-key', 'signing-key']);
      // The signing key is the control worker's alone; every agent trusts its public key.
      expect(Object.keys(services).filter((s) => secretsOf(s).includes('signing-key'))).toEqual(['worker']);
      expect(services.worker.environment).toMatchObject({ VMHUB_SIGNING_KEY_FILE: '/run/secrets/signing-key' });
    });

    it('gives each agent a volume of its own, and mounts no agent volume anywhere else', () => {
      const mounts = Object.entries(services).flatMap(([name, s]) => (s.volumes ?? []).map((v) => [name, v.split(':')[0]]));
      for (const sddc of SDDCS) {
        expect(services[`agent-${sddc}`].volumes).toEqual([`sddc-${sddc}-data:/app/.data/sddc:rw`]);
        expect(mounts.filter(([, v]) => v === `sddc-${sddc}-data`)).toEqual([[`agent-${sddc}`, `sddc-${sddc}-data`]]);
      }
    });

    it('gives agents read-only SAS tokens for storage, never an account key; the control worker the keys: all as file secrets', () => {
      const topology = JSON.parse(fs.readFileSync(path.join(ROOT, 'config', 'topology.json'), 'utf8')) as {
        storage: Array<{ sasTokenEnv?: string; accountKeyEnv?: string }>;
      };
      expect(topology.storage.map((s) => s.sasTokenEnv)).toEqual(['VMHUB_DC_EAST_READ_SAS', 'VMHUB_DC_WEST_READ_SAS']);
      expect(topology.storage.map((s) => s.accountKeyEnv)).toEqual(['VMHUB_DC_EAST_ACCOUNT_KEY', 'VMHUB_DC_WEST_ACCOUNT_KEY']);
      const storageSecrets = ['dc-east-account-key', 'dc-west-account-key', 'dc-east-read-sas', 'dc-west-read-sas'];
      const holders = (secret: string) =>
        Object.keys(services)
          .filter((s) => secretsOf(s).includes(secret))
          .sort();
      const agents = SDDCS.map((sddc) => `agent-${sddc}`);
      expect(holders('dc-east-read-sas')).toEqual(agents);
      expect(holders('dc-west-read-sas')).toEqual(agents);
      expect(holders('dc-east-account-key')).toEqual(['azurite-east', 'worker']);
      expect(holders('dc-west-account-key')).toEqual(['azurite-west', 'worker']);
      for (const agent of agents) {
        const env = services[agent].environment!;
        expect(env).toMatchObject({
          VMHUB_DC_EAST_READ_SAS_FILE: '/run/secrets/dc-east-read-sas',
          VMHUB_DC_WEST_READ_SAS_FILE: '/run/secrets/dc-west-read-sas',
        });
        expect(Object.keys(env).filter((n) => /ACCOUNT_KEY|_READ_SAS$/.test(n))).toEqual([]);
      }
      const worker = services.worker.environment!;
      expect(worker).toMatchObject({
        VMHUB_DC_EAST_ACCOUNT_KEY_FILE: '/run/secrets/dc-east-account-key',
        VMHUB_DC_WEST_ACCOUNT_KEY_FILE: '/run/secrets/dc-west-account-key',
      });
      // A SAS would take precedence over the key, and the control worker writes.
      expect(Object.keys(worker).filter((n) => /_READ_SAS|_ACCOUNT_KEY$/.test(n))).toEqual([]);
      // Each Azurite reads its key from its secret at start, not from an environment `docker inspect` shows.
      for (const dc of ['east', 'west']) {
        const azurite = services[`azurite-${dc}`];
        expect(azurite.environment ?? {}).toEqual({});
        expect(JSON.stringify(azurite.command)).toContain(`cat /run/secrets/dc-${dc}-account-key`);
      }
      const declared = Object.keys(compose.secrets ?? {});
      for (const secret of storageSecrets) expect(declared).toContain(secret);
    });

    it('gives agents a catalog user that may only read the SDDC records', () => {
      for (const sddc of SDDCS) {
        expect(services[`agent-${sddc}`].environment).toMatchObject({ MONGODB_URI_FILE: '/run/secrets/catalog-agent-uri' });
      }
      expect(services.worker.environment).toMatchObject({ MONGODB_URI_FILE: '/run/secrets/catalog-control-uri' });
      expect(services.mongodb.volumes).toContain(`${ROOT}/config/mongo-init.js:/docker-entrypoint-initdb.d/vmhub-users.js:ro`);
      const init = fs.readFileSync(path.join(ROOT, 'config', 'mongo-init.js'), 'utf8');
      const role = /createRole\(\{([\s\S]*?)\}\);/.exec(init)?.[1] ?? '';
      expect(role).toMatch(/role: 'vmhubAgent'/);
      expect([...role.matchAll(/actions: \[([^\]]*)\]/g)].map((m) => m[1])).toEqual(["'find'"]);
      expect([...role.matchAll(/collection: '([^']*)'/g)].map((m) => m[1])).toEqual(['sddcs']);
      expect(init).toMatch(
        /createUser\(\{ \.\.\.userOf\('catalog-agent-uri'\), roles: \[\{ role: 'vmhubAgent', db: 'vmhub' \}\] \}\)/,
      );
    });

    it('puts no login on a command line: vcsim reads it from its secret files', () => {
      for (const sddc of SDDCS) {
        const command = services[`vcsim-${sddc}`].command as string[];
        for (const flag of ['-username', '-password', '-tlscert', '-tlskey']) {
          expect(command[command.indexOf(flag) + 1]).toMatch(new RegExp(`^/run/secrets/vcenter-${sddc}-`));
        }
      }
      const commands = JSON.stringify(Object.values(services).map((s) => s.command));
      for (const secret of Object.values(CREDENTIALS)) expect(commands).not.toContain(secret);
    });

    it('runs the workers without capabilities or privilege gain, as the image’s unprivileged user', () => {
      for (const name of ['worker', ...SDDCS.map((s) => `agent-${s}`)]) {
        expect(services[name]).toMatchObject({ cap_drop: ['ALL'], security_opt: ['no-new-privileges:true'] });
      }
      const dockerfile = fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
      expect(dockerfile.match(/^USER .*$/gm)).toEqual(['USER node']);
      // The code is root's: the runtime user cannot change what it runs.
      expect(dockerfile).not.toMatch(/--chown/);
    });

    it('keeps .env files and the secrets folder out of git', () => {
      for (const file of ['.env', '.env.production', 'secrets/vcenter-east-1-password']) {
        expect(execFileSync('git', ['check-ignore', '--no-index', file], { cwd: ROOT, encoding: 'utf8' }).trim()).toBe(file);
      }
    });
  });
});
