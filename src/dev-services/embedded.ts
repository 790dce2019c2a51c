import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Catalog } from '../catalog/catalog';
import { loadConfig, type Config } from '../config';
import { ensureDevKeys } from '../provenance/dev-keys';
import { registerDefaultSddcs, type DefaultSddc } from '../sddc/registry';
import { loadTopology } from '../topology/topology';
import { azuriteBlobScript, catalogServer, temporalBinary } from './tools';
import type { ServiceSpec } from './service-spec';
import { vcsimServices } from './vcsim';

/**
 * The embedded services: Temporal dev server with its Web UI, one Azurite per data center, the
 * catalog (FerretDB on SQLite, or mongod), and one vcsim per vCenter of the default SDDCs. Each runs
 * detached with its pid file and log under `<dataDir>/services/`, bound to 127.0.0.1; only endpoints that
 * point at the loopback are started here.
 */
export const SEARCH_ATTRIBUTES = { VmImage: 'Keyword', VmImageVersion: 'Keyword', VmSddc: 'KeywordList' } as const;

export interface ServiceStatus {
  name: string;
  url: string;
  state: 'running' | 'stopped' | 'unhealthy';
  pid?: number;
  /** True when this call started it, false when it was already running. */
  startedNow?: boolean;
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);

function hostPort(address: string, defaultPort: number): { host: string; port: number } {
  const url = new URL(address.includes('://') ? address : `tcp://${address}`);
  return { host: url.hostname, port: url.port ? Number(url.port) : defaultPort };
}

/** Host and port of a single-host MongoDB URI; undefined for replica-set seed lists and SRV URIs. */
function catalogHostPort(uri: string): { host: string; port: number } | undefined {
  try {
    const url = new URL(uri);
    return url.protocol === 'mongodb:' ? { host: url.hostname, port: url.port ? Number(url.port) : 27017 } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Dynamic-config values for the dev server, `KEY=JSON` separated by spaces (VMHUB_TEMPORAL_DYNAMIC_CONFIG):
 * the tests shorten the long poll so that an idle worker's poll time, which liveness checks read, moves
 * every few seconds rather than every minute.
 */
function dynamicConfig(env: NodeJS.ProcessEnv): string[] {
  return (env.VMHUB_TEMPORAL_DYNAMIC_CONFIG ?? '').split(/\s+/).filter(Boolean);
}

/** The services this configuration needs started locally; each is resolved lazily so `status` never installs. */
export function plannedServices(config: Config = loadConfig(), env: NodeJS.ProcessEnv = process.env): Array<() => ServiceSpec> {
  const dir = (name: string) => path.join(config.dataDir, name);
  const specs: Array<() => ServiceSpec> = [];

  const temporal = hostPort(config.temporal.address, 7233);
  if (LOOPBACK.has(temporal.host)) {
    const uiPort = Number(env.TEMPORAL_UI_PORT ?? temporal.port + 1000);
    specs.push(() => ({
      name: 'temporal',
      port: temporal.port,
      url: `http://127.0.0.1:${uiPort} (Web UI), 127.0.0.1:${temporal.port} (gRPC)`,
      dirs: [dir('temporal')],
      command: temporalBinary(),
      args: [
        'server',
        'start-dev',
        '--ip',
        '127.0.0.1',
        '--port',
        String(temporal.port),
        '--ui-port',
        String(uiPort),
        '--db-filename',
        path.join(dir('temporal'), 'temporal.db'),
        '--ui-disable-news-fetch',
        '--log-level',
        'warn',
        ...Object.entries(SEARCH_ATTRIBUTES).flatMap(([k, v]) => ['--search-attribute', `${k}=${v}`]),
        ...dynamicConfig(env).flatMap((kv) => ['--dynamic-config-value', kv]),
      ],
    }));
  }

  const catalog = catalogHostPort(config.mongodbUri);
  if (catalog && LOOPBACK.has(catalog.host)) {
    specs.push(() => {
      const server = catalogServer();
      const dbDir = dir('catalog');
      const args =
        server.kind === 'mongod'
          ? ['--bind_ip', '127.0.0.1', '--port', String(catalog.port), '--dbpath', dbDir, '--quiet']
          : [
              '--handler=sqlite',
              `--sqlite-url=file:${dbDir}/`,
              `--listen-addr=127.0.0.1:${catalog.port}`,
              `--state-dir=${dbDir}`,
              '--telemetry=disable',
              '--debug-addr=-',
              '--log-level=warn',
            ];
      return {
        name: `catalog (${server.kind})`,
        port: catalog.port,
        url: `mongodb://127.0.0.1:${catalog.port}`,
        command: server.binary,
        args,
        dirs: [dbDir],
      };
    });
  }

  const topology = loadTopology(config.topologyPath, env);
  const azurites = new Map<number, string>();
  for (const location of topology.storage) {
    const url = new URL(location.endpoint);
    if (!LOOPBACK.has(url.hostname)) continue;
    const port = Number(url.port || 80);
    if (!azurites.has(port)) azurites.set(port, location.dataCenter);
  }
  for (const [port, dataCenter] of azurites) {
    specs.push(() => ({
      name: `azurite ${dataCenter}`,
      port,
      url: `http://127.0.0.1:${port}`,
      dirs: [dir(`azurite/${dataCenter}`)],
      command: process.execPath,
      args: [
        azuriteBlobScript(),
        '--blobHost',
        '127.0.0.1',
        '--blobPort',
        String(port),
        '--location',
        dir(`azurite/${dataCenter}`),
        '--silent',
        '--loose',
        '--skipApiVersionCheck',
        '--disableTelemetry',
      ],
    }));
  }
  specs.push(...vcsimServices(topology, dir, env));
  return specs;
}

function servicesDir(config: Config): string {
  const d = path.join(config.dataDir, 'services');
  fs.mkdirSync(d, { recursive: true });
  return d;
}

function slug(name: string): string {
  return name.replace(/[^a-z0-9]+/gi, '-').replace(/-$/, '');
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export function portOpen(port: number, host = '127.0.0.1', timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number, logFile: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  const tail = fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8').split('\n').slice(-15).join('\n') : '';
  throw new Error(`${what} did not become ready within ${timeoutMs / 1000}s; log ${logFile}:\n${tail}`);
}

interface PidFile {
  pid: number;
  port: number;
  name: string;
}

function readPidFile(file: string): PidFile | undefined {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as PidFile;
  } catch {
    return undefined;
  }
}

/**
 * Registers the topology's default SDDCs in the catalog, those that are missing only: an SDDC an operator
 * changed or registered under a default name keeps its fields. Safe to call at every start.
 */
export async function registerDefaultSddcsAt(config: Config = loadConfig()): Promise<DefaultSddc[]> {
  const catalog = await Catalog.connect(config.mongodbUri, { timeoutMs: 5_000 });
  try {
    return await registerDefaultSddcs(catalog.sddcs, loadTopology(config.topologyPath));
  } finally {
    await catalog.close();
  }
}

export async function startServices(
  config: Config = loadConfig(),
  env: NodeJS.ProcessEnv = process.env,
): Promise<ServiceStatus[]> {
  const dir = servicesDir(config);
  const result: ServiceStatus[] = [];
  // Workers started beside the services sign and verify with the dev key pair (see ensureDevKeys).
  ensureDevKeys(config.dataDir);
  for (const make of plannedServices(config, env)) result.push(await startSpec(make(), dir, config.dataDir));
  return result;
}

/** A service's name with or without its variant: "catalog" is "catalog (ferretdb)" or "catalog (mongod)". */
function isNamed(serviceName: string, name: string): boolean {
  return serviceName === name || serviceName.replace(/ \(.*\)$/, '') === name;
}

/**
 * Starts one embedded service by name ("temporal", "catalog", "azurite dc-east") on its configured port and
 * data folder, as startServices does; one already running is left as it is.
 */
export async function startService(config: Config, name: string, env: NodeJS.ProcessEnv = process.env): Promise<ServiceStatus> {
  const spec = plannedServices(config, env)
    .map((make) => make())
    .find((s) => isNamed(s.name, name));
  if (!spec) throw new Error(`no embedded service is named "${name}"`);
  return startSpec(spec, servicesDir(config), config.dataDir);
}

/** Stops one embedded service by name and keeps its data, for startService; undefined if it was not running. */
export async function stopService(config: Config, name: string): Promise<ServiceStatus | undefined> {
  const dir = servicesDir(config);
  for (const file of fs.readdirSync(dir).filter((f) => f.endsWith('.pid'))) {
    const p = readPidFile(path.join(dir, file));
    if (p && isNamed(p.name, name)) return (await stopServices(config, [p.pid]))[0];
  }
  return undefined;
}

async function startSpec(spec: ServiceSpec, dir: string, dataDir: string): Promise<ServiceStatus> {
  const pidFile = path.join(dir, `${slug(spec.name)}.pid`);
  const logFile = path.join(dir, `${slug(spec.name)}.log`);
  const existing = readPidFile(pidFile);
  if (existing && pidAlive(existing.pid) && (await portOpen(spec.port))) {
    return { name: spec.name, url: spec.url, state: 'running', pid: existing.pid, startedNow: false };
  }
  if (await portOpen(spec.port)) {
    throw new Error(`port ${spec.port} for ${spec.name} is taken by another process; free it or choose another port`);
  }
  for (const d of spec.dirs) fs.mkdirSync(d, { recursive: true });
  const log = fs.openSync(logFile, 'a');
  const child = spawn(spec.command, spec.args, {
    detached: true,
    stdio: ['ignore', log, log],
    cwd: dataDir,
    env: spec.env && { ...process.env, ...spec.env },
  });
  fs.closeSync(log);
  child.unref();
  const pid = child.pid!;
  fs.writeFileSync(pidFile, JSON.stringify({ pid, port: spec.port, name: spec.name } satisfies PidFile));
  await waitFor(
    spec.name,
    async () => {
      if (!pidAlive(pid))
        throw new Error(`${spec.name} exited at start; log ${logFile}:\n${fs.readFileSync(logFile, 'utf8').slice(-2000)}`);
      return portOpen(spec.port);
    },
    120_000,
    logFile,
  );
  if (spec.name === 'temporal') await waitForTemporal(spec.command, spec.port, logFile);
  return { name: spec.name, url: spec.url, state: 'running', pid, startedNow: true };
}

/** The frontend port opens before the default namespace is usable; wait until the namespace answers. */
async function waitForTemporal(binary: string, port: number, logFile: string): Promise<void> {
  await waitFor(
    'temporal namespace',
    async () => {
      try {
        execFileSync(binary, ['operator', 'namespace', 'describe', '--namespace', 'default', '--address', `127.0.0.1:${port}`], {
          stdio: 'ignore',
        });
        return true;
      } catch {
        return false;
      }
    },
    60_000,
    logFile,
  );
}

export async function servicesStatus(config: Config = loadConfig()): Promise<ServiceStatus[]> {
  const dir = servicesDir(config);
  const result: ServiceStatus[] = [];
  for (const file of fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.pid'))
    .sort()) {
    const p = readPidFile(path.join(dir, file));
    if (!p) continue;
    const alive = pidAlive(p.pid);
    const open = alive && (await portOpen(p.port));
    result.push({
      name: p.name,
      url: `127.0.0.1:${p.port}`,
      pid: p.pid,
      state: open ? 'running' : alive ? 'unhealthy' : 'stopped',
    });
  }
  return result;
}

/** Stops the embedded services, or only those with the given pids. */
export async function stopServices(config: Config = loadConfig(), only?: number[]): Promise<ServiceStatus[]> {
  const dir = servicesDir(config);
  const stopped: ServiceStatus[] = [];
  for (const file of fs.readdirSync(dir).filter((f) => f.endsWith('.pid'))) {
    const pidFile = path.join(dir, file);
    const p = readPidFile(pidFile);
    if (only && (!p || !only.includes(p.pid))) continue;
    if (p && pidAlive(p.pid)) {
      await stopProcessGroup(p.pid);
      stopped.push({ name: p.name, url: `127.0.0.1:${p.port}`, state: 'stopped', pid: p.pid });
    }
    fs.rmSync(pidFile, { force: true });
  }
  return stopped;
}

export async function stopProcessGroup(pid: number, graceMs = 10_000): Promise<void> {
  const signal = (sig: NodeJS.Signals) => {
    try {
      process.kill(-pid, sig);
    } catch {
      try {
        process.kill(pid, sig);
      } catch {
        // already gone
      }
    }
  };
  signal('SIGTERM');
  const deadline = Date.now() + graceMs;
  while (pidAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  if (pidAlive(pid)) signal('SIGKILL');
  while (pidAlive(pid)) await new Promise((r) => setTimeout(r, 50));
}
