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
});
