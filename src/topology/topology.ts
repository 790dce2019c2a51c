import fs from 'node:fs';
import { VmhubError } from '../shared/errors';
import { parseTarget, type SddcTarget } from '../shared/sddc-target';

/** Data centers, their storage locations and the default SDDCs. */
export interface Topology {
  dataCenters: DataCenter[];
  storage: StorageLocation[];
  sddcs: SddcSeed[];
  sources: SourceCredential[];
}

/**
 * Signed access to an image server: a URL under `urlPrefix` is fetched with the token held by the
 * environment variable `sasTokenEnv` as its query string, so the token is never in a workflow input.
 */
export interface SourceCredential {
  id: string;
  urlPrefix: string;
  sasTokenEnv: string;
}

export interface DataCenter {
  id: string;
  /** Other data centers, nearest first. */
  nearest: string[];
}

export interface StorageLocation {
  id: string;
  dataCenter: string;
  role: 'primary' | 'replica';
  /** The block store backend that serves it (src/storage/backends.ts); `azure` when absent. */
  backend?: string;
  /** Blob service URL including the account, e.g. http://127.0.0.1:10000/devstoreaccount1 */
  endpoint: string;
  accountName?: string;
  /** Names of environment variables holding credentials; the values never enter this file. */
  accountKeyEnv?: string;
  connectionStringEnv?: string;
  sasTokenEnv?: string;
  container: string;
}

export interface Capacity {
  cpus: number;
  memoryMiB: number;
  diskGiB: number;
}

export interface SddcSeed {
  name: string;
  dataCenter: string;
  capacity: Capacity;
  /** Where its agent puts images; default a directory of its datastore. */
  target: SddcTarget;
}

/** Replaces `${NAME}` and `${NAME:-default}` in string values from the environment. */
export function interpolate(value: string, env: NodeJS.ProcessEnv): string {
  return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g, (_m, name: string, fallback?: string) => {
    const v = env[name];
    if (v !== undefined && v !== '') return v;
    if (fallback !== undefined) return fallback;
    throw new VmhubError('InvalidTopology', `topology refers to \${${name}}, which is not set`);
  });
}

export function parseTopology(text: string, env: NodeJS.ProcessEnv = process.env): Topology {
  let raw: unknown;
  try {
    raw = JSON.parse(text, (_k, v: unknown) => (typeof v === 'string' ? interpolate(v, env) : v));
  } catch (err) {
    if (err instanceof VmhubError) throw err;
    throw new VmhubError('InvalidTopology', `topology is not valid JSON: ${(err as Error).message}`);
  }
  const t = raw as Partial<Topology>;
  const fail = (msg: string): never => {
    throw new VmhubError('InvalidTopology', `topology: ${msg}`);
  };
  if (!Array.isArray(t.dataCenters) || t.dataCenters.length === 0) fail('dataCenters must be a non-empty list');
  if (!Array.isArray(t.storage) || t.storage.length === 0) fail('storage must be a non-empty list');
  const dcIds = new Set(t.dataCenters!.map((dc) => dc.id));
  const dataCenters = t.dataCenters!.map((dc) => ({ id: dc.id, nearest: (dc.nearest ?? []).filter((n) => n !== dc.id) }));
  for (const dc of dataCenters) for (const n of dc.nearest) if (!dcIds.has(n)) fail(`data center ${dc.id} lists unknown ${n}`);
  const seen = new Set<string>();
  for (const s of t.storage!) {
    if (!s.id || seen.has(s.id)) fail(`storage ids must be present and unique (${s.id})`);
    seen.add(s.id);
    if (!dcIds.has(s.dataCenter)) fail(`storage ${s.id} is in unknown data center ${s.dataCenter}`);
    if (s.role !== 'primary' && s.role !== 'replica') fail(`storage ${s.id} role must be primary or replica`);
    if (!/^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}$/.test(s.container ?? '')) fail(`storage ${s.id} container name is invalid`);
    try {
      new URL(s.endpoint);
    } catch {
      fail(`storage ${s.id} endpoint is not a URL`);
    }
  }
  const primaries = t.storage!.filter((s) => s.role === 'primary');
  if (primaries.length !== 1) fail(`exactly one primary storage location is required, found ${primaries.length}`);
  const sddcs = (t.sddcs ?? []).map((s) => {
    if (!dcIds.has(s.dataCenter)) fail(`SDDC ${s.name} is in unknown data center ${s.dataCenter}`);
    try {
      return { ...s, target: parseTarget(s.target, `SDDC ${s.name} target`) };
    } catch (err) {
      return fail((err as Error).message);
    }
  });
  const sources = t.sources ?? [];
  if (!Array.isArray(sources)) fail('sources must be a list');
  const sourceIds = new Set<string>();
  for (const s of sources) {
    if (!s.id || sourceIds.has(s.id)) fail(`source ids must be present and unique (${s.id})`);
    sourceIds.add(s.id);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(s.sasTokenEnv ?? ''))
      fail(`source ${s.id} sasTokenEnv must name an environment variable`);
    let prefix: URL | undefined;
    try {
      prefix = new URL(s.urlPrefix);
    } catch {
      fail(`source ${s.id} urlPrefix is not a URL`);
    }
    const plain = /^https?:$/.test(prefix!.protocol) && !prefix!.username && !prefix!.password && !/[?#]/.test(s.urlPrefix);
    if (!plain || !prefix!.pathname.endsWith('/')) {
      fail(`source ${s.id} urlPrefix must be an http(s) URL ending in "/", without credentials, query or fragment`);
    }
  }
  return { dataCenters, storage: t.storage!, sddcs, sources };
}

export function loadTopology(file: string, env: NodeJS.ProcessEnv = process.env): Topology {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new VmhubError('InvalidTopology', `cannot read topology ${file}: ${(err as Error).message}`);
  }
  return parseTopology(text, env);
}

export function primaryLocation(topology: Topology): StorageLocation {
  return topology.storage.find((s) => s.role === 'primary')!;
}

export function replicaLocations(topology: Topology): StorageLocation[] {
  return topology.storage.filter((s) => s.role === 'replica');
}

export function findLocation(topology: Topology, id: string): StorageLocation {
  const location = topology.storage.find((s) => s.id === id);
  if (!location) throw new VmhubError('InvalidTopology', `no storage location ${id} in the topology`);
  return location;
}

/** Data centers ordered from the given one outwards: itself, then its `nearest` list, then the rest. */
export function dataCentersByDistance(topology: Topology, from: string): string[] {
  const dc = topology.dataCenters.find((d) => d.id === from);
  const order = [from, ...(dc?.nearest ?? [])];
  for (const d of topology.dataCenters) if (!order.includes(d.id)) order.push(d.id);
  return order;
}

/**
 * A credential the topology names by variable (accountKeyEnv, sasTokenEnv, connectionStringEnv): `name`,
 * or when it is unset or empty, the file `name_FILE` names (a Docker secret: out of `docker inspect`).
 */
export function credentialOf(env: NodeJS.ProcessEnv, name: string | undefined): string | undefined {
  if (!name) return undefined;
  if (env[name]) return env[name];
  const file = env[`${name}_FILE`];
  if (!file) return undefined;
  try {
    return fs.readFileSync(file, 'utf8').trim() || undefined;
  } catch (err) {
    throw new VmhubError(
      'InvalidTopology',
      `cannot read ${name}_FILE ${file}: ${(err as NodeJS.ErrnoException).code ?? 'unreadable'}`,
    );
  }
}
