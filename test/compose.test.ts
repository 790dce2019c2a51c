import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

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

const CREDENTIALS = {
  MONGO_INITDB_ROOT_USERNAME: 'vmhub-root',
  MONGO_INITDB_ROOT_PASSWORD: 'pw0123456789',
  VMHUB_DC_EAST_ACCOUNT_KEY: 'ZWFzdC1rZXk=',
  VMHUB_DC_WEST_ACCOUNT_KEY: 'd2VzdC1rZXk=',
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
        'mongodb',
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
    expect(images.length).toBe(11);
    for (const image of images) expect(image).toMatch(/:[^:/]*\d[^:/]*$/);
    expect(fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8')).toMatch(/^ARG NODE_IMAGE=node:22\.\d+\.\d+-/m);
  });

  it('takes every credential from the environment, with none written in the file', () => {
    const config = composeConfig([], CREDENTIALS);
    expect(values(config, 'MONGODB_URI')).toContain('mongodb://vmhub-root:pw0123456789@mongodb:27017/vmhub?authSource=admin');
    expect(values(config, 'AZURITE_ACCOUNTS').sort()).toEqual(['devstoreaccount1:ZWFzdC1rZXk=', 'devstoreaccount1:d2VzdC1rZXk=']);
    expect(values(config, 'VMHUB_DC_EAST_ACCOUNT_KEY')).toContain('ZWFzdC1rZXk=');
    // Azurite's published key would let anyone who reaches the port read every image.
    expect(fs.readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8')).not.toMatch(/Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50/);
  });
});
