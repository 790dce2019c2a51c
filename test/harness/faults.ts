import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { CancelledFailure, ApplicationFailure } from '@temporalio/common';
import { isGrpcServiceError, ServiceError, WorkflowFailedError, type Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { Catalog } from '../../src/catalog/catalog';
import { loadConfig, type Config } from '../../src/config';
import type { DeployResult } from '../../src/shared/deploy-input';
import { BLOB_EXTENSIONS, type ImageFormat } from '../../src/shared/image-format';
import { END_OF_ARCHIVE, entryHeader, padded } from '../../src/images/tar-header';
import type { PublishInput, PublishProgress, PublishResult } from '../../src/shared/publish-input';
import { startService, startServices, stopService, stopServices } from '../../src/dev-services/embedded';
import { spawnWorker, type WorkerProcess } from '../../src/dev-services/worker-process';
import { TopologyBlockStores } from '../../src/storage/backends';
import { unlessNotFound, type BlockStores } from '../../src/storage/block-store';
import { connectClient, temporalView } from '../../src/temporal/connection';
import { loadTopology } from '../../src/topology/topology';
import { startFileServer } from './range-server';
import { freeLoopbackPort } from '../../src/engine/free-port';

/** A set of embedded services (Temporal, the catalog, one Azurite per data center, ...) and how to reach it. */
export interface ServiceSet {
  name: string;
  /** What a process needs in its environment to use these services. */
  env: NodeJS.ProcessEnv;
  config: Config;
  repository: string;
  close(): Promise<void>;
}

/** The `${NAME_PORT}` variables the topology places its loopback services with (Azurites, simulators). */
function topologyPortVariables(env: NodeJS.ProcessEnv): string[] {
  const text = fs.readFileSync(loadConfig(env).topologyPath, 'utf8');
  return [...new Set([...text.matchAll(/\$\{([A-Z0-9_]+_PORT)(?::-[^}]*)?\}/g)].map((m) => m[1]))];
}

const SERVICE_KEYS = [
  'VMHUB_DATA_DIR',
  'VMHUB_REPOSITORY_ROOTS',
  'VMHUB_WORKFLOW_BUNDLE',
  'TEMPORAL_ADDRESS',
  'TEMPORAL_UI_PORT',
  'MONGODB_URI',
];

/** The services this process already uses (jest's global setup): borrowed, never stopped here. */
export function currentServices(name = 'shared'): ServiceSet {
  const keys = [...SERVICE_KEYS, ...topologyPortVariables(process.env)];
  const env = Object.fromEntries(keys.map((k) => [k, process.env[k]]).filter(([, v]) => v !== undefined));
  const config = loadConfig({ ...process.env, ...env });
  return { name, env, config, repository: config.repositoryRoots[0], close: async () => undefined };
}

/**
 * Starts a service set of its own on free ports in a fresh `vmhub-test-*` folder, which the next test
 * run's global setup sweeps away should this process die before `close`.
 */
export async function startServiceSet(name: string, workflowBundle = process.env.VMHUB_WORKFLOW_BUNDLE): Promise<ServiceSet> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), `vmhub-test-${name}-`));
  fs.writeFileSync(path.join(dataDir, 'owner.pid'), String(process.pid));
  const repository = path.join(dataDir, 'repository');
  fs.mkdirSync(repository, { recursive: true });
  const portVariables = topologyPortVariables(process.env);
  for (let attempt = 1; ; attempt++) {
    const [temporal, ui, catalog, ...others] = await Promise.all(
      Array.from({ length: 3 + portVariables.length }, () => freeLoopbackPort()),
    );
    const env: NodeJS.ProcessEnv = {
      VMHUB_DATA_DIR: dataDir,
      VMHUB_REPOSITORY_ROOTS: repository,
      ...(workflowBundle ? { VMHUB_WORKFLOW_BUNDLE: workflowBundle } : {}),
      TEMPORAL_ADDRESS: `127.0.0.1:${temporal}`,
      TEMPORAL_UI_PORT: String(ui),
      MONGODB_URI: `mongodb://127.0.0.1:${catalog}/vmhub`,
      ...Object.fromEntries(portVariables.map((v, i) => [v, String(others[i])])),
    };
    const full = { ...process.env, ...env };
    const config = loadConfig(full);
    try {
      await startServices(config, full);
    } catch (err) {
      // A port found free can be taken before the service binds it: other ports, twice more.
      await stopServices(config);
      if (attempt === 3) throw err;
      continue;
    }
    return {
      name,
      env,
      config,
      repository,
      async close() {
        await stopServices(config);
        if (process.env.VMHUB_TEST_KEEP_DATA !== '1') fs.rmSync(dataDir, { recursive: true, force: true });
      },
    };
  }
}

/** What a request through a proxy in front of blob storage does, told by its method and query. */
export type RequestKind = 'stage-block' | 'commit-block-list' | 'get-block-list' | 'read' | 'properties' | 'other';

/** A request as a gate sees it: its kind and, for a ranged read, the first byte it asks for. */
export interface ProxiedRequest {
  kind: RequestKind;
  offset?: number;
}

function requestKind(method: string, url: string): RequestKind {
  const comp = /[?&]comp=([a-z]+)/.exec(url)?.[1];
  if (method === 'PUT' && comp === 'block') return 'stage-block';
  if (method === 'PUT' && comp === 'blocklist') return 'commit-block-list';
  if (method === 'GET' && comp === 'blocklist') return 'get-block-list';
  // The signed envelope beside the blob, read by each agent attempt, is not the image's content.
  if (method === 'GET' && /\.dsse\.json(\?|$)/.test(url)) return 'other';
  if (method === 'GET' && comp === undefined && !/[?&]restype=/.test(url)) return 'read';
  if (method === 'HEAD') return 'properties';
  return 'other';
}

/**
 * Requests held at a point of their way through a proxy: before they are forwarded ('request'), or
 * after the service answered and before the client hears it ('response'). `reached` resolves when the
 * first one is held; `open` lets every held one go on, `drop` cuts them off.
 */
export interface Gate {
  reached: Promise<void>;
  open(): void;
  drop(): void;
}

interface GateState {
  match: (r: ProxiedRequest) => boolean;
  at: 'request' | 'response';
  reach: () => void;
  outcome?: 'open' | 'drop';
  waiting: Array<(outcome: 'open' | 'drop') => void>;
}

/**
 * A transparent HTTP proxy in front of a real service (an Azurite, a file server) that counts what goes
 * through, can slow every request down, and can hold chosen requests at a gate while a fault is injected.
 */
export interface HttpProxy {
  port: number;
  /** Blocks the service staged, and bytes of content it answered to reads, through this proxy. */
  blockPuts: number;
  readBytes: number;
  delayMs: number;
  gate(match: (r: ProxiedRequest) => boolean, at: 'request' | 'response'): Gate;
  /** Resolves when a request matching `match` has been answered in full to its client. */
  answered(match: (r: ProxiedRequest) => boolean): Promise<void>;
  /** Resolves once no request is on its way through, to the service or back, whether or not its client waits. */
  settled(): Promise<void>;
  close(): Promise<void>;
}

export async function startHttpProxy(targetPort: number, delayMs = 0): Promise<HttpProxy> {
  const state = { blockPuts: 0, readBytes: 0, delayMs };
  const gates: GateState[] = [];
  const watchers: Array<{ match: (r: ProxiedRequest) => boolean; resolve: () => void }> = [];
  let underWay = 0;
  const onSettled: Array<() => void> = [];
  const ended = () => {
    if (--underWay === 0) for (const resolve of onSettled.splice(0)) resolve();
  };
  const pass = async (r: ProxiedRequest, at: GateState['at']): Promise<'open' | 'drop'> => {
    for (const g of gates.filter((x) => x.at === at && x.match(r))) {
      g.reach();
      const outcome = g.outcome ?? (await new Promise<'open' | 'drop'>((resolve) => g.waiting.push(resolve)));
      if (outcome === 'drop') return 'drop';
    }
    return 'open';
  };

  const server = http.createServer((req, res) => {
    const kind = requestKind(req.method ?? 'GET', req.url ?? '/');
    const range = /^bytes=(\d+)-/.exec(String(req.headers['x-ms-range'] ?? req.headers.range ?? ''));
    const r: ProxiedRequest = { kind, offset: range ? Number(range[1]) : undefined };
    const body: Buffer[] = [];
    // Under way from the first byte until the service's answer is read, or the request is dropped.
    underWay++;
    let finished = false;
    let received = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      ended();
    };
    req.on('data', (chunk: Buffer) => body.push(chunk));
    req.once('close', () => {
      if (!received) finish();
    });
    req.once('end', () => {
      received = true;
      void (async () => {
        if (state.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, state.delayMs));
        if ((await pass(r, 'request')) === 'drop') {
          res.destroy();
          return finish();
        }
        const upstream = http.request(
          { host: '127.0.0.1', port: targetPort, method: req.method, path: req.url, headers: req.headers },
          (up) => {
            void (async () => {
              const chunks: Buffer[] = [];
              for await (const chunk of up) chunks.push(chunk as Buffer);
              const answer = Buffer.concat(chunks);
              // Counted as the service did it, whether or not its client is still there to hear.
              if ((up.statusCode ?? 500) < 300) {
                if (kind === 'stage-block') state.blockPuts++;
                if (kind === 'read') state.readBytes += answer.length;
              }
              finish();
              if ((await pass(r, 'response')) === 'drop' || res.destroyed) return void res.destroy();
              res.writeHead(up.statusCode ?? 502, up.headers);
              res.end(answer, () => {
                for (const w of watchers.filter((x) => x.match(r))) {
                  watchers.splice(watchers.indexOf(w), 1);
                  w.resolve();
                }
              });
            })().catch(() => {
              res.destroy();
              finish();
            });
          },
        );
        upstream.on('error', () => {
          res.destroy();
          finish();
        });
        upstream.end(Buffer.concat(body));
      })();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    get blockPuts() {
      return state.blockPuts;
    },
    get readBytes() {
      return state.readBytes;
    },
    get delayMs() {
      return state.delayMs;
    },
    set delayMs(v: number) {
      state.delayMs = v;
    },
    gate(match, at) {
      let reach!: () => void;
      const reached = new Promise<void>((resolve) => (reach = resolve));
      const g: GateState = { match, at, reach, waiting: [] };
      gates.push(g);
      const settle = (outcome: 'open' | 'drop') => {
        gates.splice(gates.indexOf(g), 1);
        g.outcome = outcome;
        for (const w of g.waiting.splice(0)) w(outcome);
      };
      return { reached, open: () => settle('open'), drop: () => settle('drop') };
    },
    answered(match) {
      return new Promise((resolve) => watchers.push({ match, resolve }));
    },
    settled() {
      return underWay === 0 ? Promise.resolve() : new Promise((resolve) => onSettled.push(resolve));
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const g of [...gates]) g.waiting.splice(0).forEach((w) => w('drop'));
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * A TCP proxy in front of the catalog whose client-to-server direction can be held: what clients send
 * meanwhile waits; `release` delivers it, or with deliver=false cuts those connections and drops it.
 */
export interface TcpProxy {
  port: number;
  hold(): void;
  release(deliver?: boolean): void;
  close(): Promise<void>;
}

export async function startTcpProxy(targetPort: number): Promise<TcpProxy> {
  let held: Array<() => void> | undefined;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, '127.0.0.1');
    sockets.add(client).add(upstream);
    // A client that goes away while held still has its held bytes delivered, as a network would.
    const toServer = (send: () => void) => (held ? held.push(send) : send());
    client.on('data', (chunk: Buffer) => toServer(() => upstream.write(chunk)));
    client.on('close', () => toServer(() => upstream.end()));
    client.on('error', () => undefined);
    upstream.on('error', () => client.destroy());
    upstream.on('close', () => {
      client.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    });
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    hold() {
      held ??= [];
    },
    release(deliver = true) {
      const flush = held ?? [];
      held = undefined;
      if (deliver) for (const send of flush) send();
      else for (const socket of sockets) socket.destroy();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A client of one service set with a catalog database of its own: what the scenarios run against. */
export interface FaultWorld {
  services: ServiceSet;
  client: Client;
  catalog: Catalog;
  storage: BlockStores;
  /** The environment of this world's worker and agent processes. */
  env: NodeJS.ProcessEnv;
  /** Image names already taken in this world's catalog. */
  names: Set<string>;
  close(): Promise<void>;
}

export async function openWorld(services: ServiceSet): Promise<FaultWorld> {
  const full = { ...process.env, ...services.env };
  const mongodbUri = services.config.mongodbUri.replace(/\/[^/?]*(\?|$)/, `/vmhub_faults_${randomUUID().slice(0, 8)}$1`);
  const storage = new TopologyBlockStores(loadTopology(services.config.topologyPath, full), full);
  await storage.ensureContainers();
  const catalog = await Catalog.connect(mongodbUri);
  const client = await connectClient(services.config.temporal);
  return {
    services,
    client,
    catalog,
    storage,
    env: { ...services.env, MONGODB_URI: mongodbUri },
    names: new Set(),
    async close() {
      await client.connection.close();
      await catalog.close();
    },
  };
}

const MiB = 1024 * 1024;
const BLOCK_MIB = 4;
/** Uploads (or ranged reads) in flight per activity in the workers the scenarios start. */
const CONCURRENCY = 2;
/** Chunk of the agent's ranged reads (src/activities/agent.ts). */
const AGENT_CHUNK = 8 * MiB;

/** Deterministic, incompressible bytes. */
export function noise(size: number, seed: number): Buffer {
  const buf = Buffer.alloc(Math.ceil(size / 4) * 4);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < buf.length; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    buf.writeUInt32LE(x >>> 0, i);
  }
  return buf.subarray(0, size);
}

export function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

async function sha256OfFile(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** An ISO-shaped image: noise with the ISO 9660 signature where a reader looks for it. */
function isoBytes(sizeBytes: number, seed: number): Buffer {
  const bytes = noise(sizeBytes, seed);
  bytes.write('\x01CD001\x01', 32768, 'latin1');
  return bytes;
}

const DESCRIPTOR = (version: string, disks: string[]) => `<?xml version="1.0"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
  xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData">
  <References>${disks.map((d, i) => `<File ovf:href="${d}" ovf:id="f${i}"/>`).join('')}</References>
  <DiskSection><Info/>${disks.map((_, i) => `<Disk ovf:diskId="d${i}" ovf:fileRef="f${i}" ovf:capacity="1" ovf:capacityAllocationUnits="byte * 2^30"/>`).join('')}</DiskSection>
  <VirtualSystem ovf:id="appliance"><Info/><Name>appliance</Name>
    <ProductSection><Info/><Product>Appliance</Product><Version>${version}</Version></ProductSection>
    <VirtualHardwareSection><Info/>
      <Item><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>2</rasd:VirtualQuantity></Item>
      <Item><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits><rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>1024</rasd:VirtualQuantity></Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>`;

function tarMember(name: string, bytes: Buffer): Buffer[] {
  return [entryHeader(name, bytes.length), bytes, Buffer.alloc(padded(bytes.length) - bytes.length)];
}

/**
 * An OVA: descriptor, SHA-256 manifest, then the disks. `wrongDigest` lists disks the manifest
 * misstates; `garbage` appends a header of noise and that many more bytes after the disks.
 */
function ovaBytes(
  version: string,
  disks: Array<{ name: string; bytes: Buffer }>,
  options: { wrongDigest?: string[]; garbage?: number } = {},
): Buffer {
  const descriptor = Buffer.from(
    DESCRIPTOR(
      version,
      disks.map((d) => d.name),
    ),
  );
  const manifest = [{ name: 'appliance.ovf', bytes: descriptor }, ...disks]
    .map(
      (m) => `SHA256(${m.name})= ${options.wrongDigest?.includes(m.name) ? sha256(Buffer.from('other bytes')) : sha256(m.bytes)}`,
    )
    .join('\n');
  const parts = [
    ...tarMember('appliance.ovf', descriptor),
    ...tarMember('appliance.mf', Buffer.from(`${manifest}\n`)),
    ...disks.flatMap((d) => tarMember(d.name, d.bytes)),
  ];
  if (options.garbage !== undefined) parts.push(noise(512, 404), noise(options.garbage, 405));
  else parts.push(END_OF_ARCHIVE);
  return Buffer.concat(parts);
}

/** The end of a workflow run, as Temporal tells it. */
export interface RunEnd {
  workflowId: string;
  status: 'Completed' | 'Failed' | 'Cancelled' | 'Terminated' | 'TimedOut' | 'ContinuedAsNew' | 'Running';
  failureType?: string;
  failureMessage?: string;
  result?: unknown;
  startedAt: number;
  closedAt: number;
}

const STATUS_NAMES: Record<string, RunEnd['status']> = {
  COMPLETED: 'Completed',
  FAILED: 'Failed',
  CANCELLED: 'Cancelled',
  TERMINATED: 'Terminated',
  TIMED_OUT: 'TimedOut',
  CONTINUED_AS_NEW: 'ContinuedAsNew',
  RUNNING: 'Running',
};

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}`);
    await sleep(25);
  }
}

/** Retries a call to Temporal that fails because the server cannot be reached, as while it restarts. */
async function retrying<T>(fn: () => Promise<T>, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (!(err instanceof ServiceError || isGrpcServiceError(err)) || Date.now() > deadline) throw err;
      await sleep(500);
    }
  }
}

/**
 * Waits until the run has ended, for at most `boundMs`: "every run ends" is this wait not timing out.
 * Polls describe rather than holding a long poll open, so a Temporal restart only delays the answer.
 */
async function runEnd(world: FaultWorld, workflowId: string, boundMs: number): Promise<RunEnd> {
  const handle = world.client.workflow.getHandle(workflowId);
  const deadline = Date.now() + boundMs;
  for (;;) {
    const d = await retrying(() => handle.describe());
    const status = STATUS_NAMES[d.status.name] ?? 'Running';
    if (status !== 'Running') {
      const end: RunEnd = {
        workflowId,
        status,
        startedAt: d.startTime.getTime(),
        closedAt: d.closeTime?.getTime() ?? Date.now(),
      };
      try {
        end.result = await retrying(() => handle.result());
      } catch (err) {
        const cause = err instanceof WorkflowFailedError ? err.cause : err;
        if (cause instanceof ApplicationFailure) end.failureType = cause.type ?? undefined;
        else if (cause instanceof CancelledFailure) end.failureType = 'Cancelled';
        end.failureMessage = (cause as Error | undefined)?.message;
      }
      return end;
    }
    if (Date.now() > deadline) {
      const pending = (d.raw.pendingActivities ?? []).map((a) =>
        `${a.activityType?.name} attempt ${a.attempt} ${a.lastFailure?.message ?? ''}`.trim(),
      );
      throw new Error(`${workflowId} is still running after ${boundMs / 1000}s; pending: ${pending.join('; ') || 'no activity'}`);
    }
    await sleep(250);
  }
}

/**
 * From a run's history: the highest attempt each activity type reached, and for each activity a cancel
 * was asked of, how long it took to stop after the request.
 */
async function activityHistory(
  world: FaultWorld,
  workflowId: string,
): Promise<{ attempts: Record<string, number>; cancels: Array<{ activity: string; secondsToStop: number | null }> }> {
  const history = await retrying(() => world.client.workflow.getHandle(workflowId).fetchHistory());
  const types = new Map<string, string>();
  const attempts: Record<string, number> = {};
  const cancelAt = new Map<string, number>();
  const cancels: Array<{ activity: string; secondsToStop: number | null }> = [];
  const time = (e: temporal.api.history.v1.IHistoryEvent) =>
    Number(e.eventTime?.seconds ?? 0) * 1000 + (e.eventTime?.nanos ?? 0) / 1e6;
  for (const e of history.events ?? []) {
    const scheduled = e.activityTaskScheduledEventAttributes;
    if (scheduled) types.set(String(e.eventId), scheduled.activityType?.name ?? '?');
    const started = e.activityTaskStartedEventAttributes;
    if (started) {
      const type = types.get(String(started.scheduledEventId)) ?? '?';
      attempts[type] = Math.max(attempts[type] ?? 0, started.attempt ?? 1);
    }
    const cancel = e.activityTaskCancelRequestedEventAttributes;
    if (cancel) cancelAt.set(String(cancel.scheduledEventId), time(e));
    const closed =
      e.activityTaskCanceledEventAttributes ??
      e.activityTaskCompletedEventAttributes ??
      e.activityTaskFailedEventAttributes ??
      e.activityTaskTimedOutEventAttributes;
    const id = String(closed?.scheduledEventId);
    if (closed && cancelAt.has(id)) {
      cancels.push({ activity: types.get(id) ?? '?', secondsToStop: round((time(e) - cancelAt.get(id)!) / 1000) });
      cancelAt.delete(id);
    }
  }
  for (const id of cancelAt.keys()) cancels.push({ activity: types.get(id) ?? '?', secondsToStop: null });
  return { attempts, cancels };
}

/** True once a worker has started an activity of this type for the run, and it has not finished. */
async function activityRunning(world: FaultWorld, workflowId: string, type: string): Promise<boolean> {
  const d = await retrying(() => world.client.workflow.getHandle(workflowId).describe());
  return (d.raw.pendingActivities ?? []).some(
    (a) => a.activityType?.name === type && a.state === temporal.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_STARTED,
  );
}

/** How long a run may take to end before its scenario fails: far longer than any retry here should need. */
const END_BOUND_MS = 12 * 60_000;

/** One scenario's run: the names it made (so the checks look only at its own), its processes and proxies. */
export class ScenarioRun {
  readonly images = new Set<string>();
  readonly taskQueues = new Set<string>();
  readonly datastores = new Set<string>();
  readonly ends: RunEnd[] = [];
  readonly details: Record<string, unknown> = {};
  faultAt?: number;
  private readonly cleanups: Array<() => Promise<void>> = [];
  private spawned = 0;

  constructor(
    readonly world: FaultWorld,
    readonly tag: string,
    readonly seed: number,
    readonly logDir: string,
  ) {}

  /** An image name not yet used in this world's catalog: `base` itself if it is free. */
  image(base: string): string {
    const name = this.world.names.has(base) ? `${base}-${this.tag}` : base;
    this.world.names.add(name);
    this.images.add(name);
    return name;
  }

  queue(kind: string): string {
    const queue = `${kind}-${this.tag}-${randomUUID().slice(0, 6)}`;
    if (kind === 'control') this.taskQueues.add(queue);
    return queue;
  }

  writeImage(name: string, bytes: Buffer): string {
    fs.writeFileSync(path.join(this.world.services.repository, name), bytes);
    return name;
  }

  async proxy(targetPort: number, delayMs = 0): Promise<HttpProxy> {
    const proxy = await startHttpProxy(targetPort, delayMs);
    this.cleanups.push(() => proxy.close());
    return proxy;
  }

  async tcpProxy(targetPort: number): Promise<TcpProxy> {
    const proxy = await startTcpProxy(targetPort);
    this.cleanups.push(() => proxy.close());
    return proxy;
  }

  spawn(args: string[], env: NodeJS.ProcessEnv): WorkerProcess {
    const worker = spawnWorker(
      args,
      { VMHUB_LOG_LEVEL: 'WARN', ...env },
      path.join(this.logDir, `${args.join('-')}-${++this.spawned}.log`),
    );
    this.cleanups.push(() => worker.stop());
    return worker;
  }

  fault(what: string): void {
    this.faultAt = Date.now();
    this.details.injected = what;
  }

  async end(workflowId: string): Promise<RunEnd> {
    const end = await runEnd(this.world, workflowId, END_BOUND_MS);
    this.ends.push(end);
    return end;
  }

  later(cleanup: () => Promise<void>): void {
    this.cleanups.push(cleanup);
  }

  async cleanup(): Promise<void> {
    for (const c of this.cleanups.splice(0).reverse()) await c().catch(() => undefined);
  }
}

function check(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(message);
}

function port(url: string): number {
  return Number(new URL(url.includes('://') ? url : `tcp://${url}`).port);
}

const eastPort = (w: FaultWorld) => Number(w.services.env.AZURITE_DC_EAST_PORT);
const westPort = (w: FaultWorld) => Number(w.services.env.AZURITE_DC_WEST_PORT);

async function blobState(world: FaultWorld, storage: string, blob: string): Promise<{ exists: boolean; uncommitted: number }> {
  const store = world.storage.store(storage);
  const list = await unlessNotFound(store.uncommittedBlocks(blob));
  return { exists: (await unlessNotFound(store.getProperties(blob))) !== undefined, uncommitted: list?.length ?? 0 };
}

async function blobSha256(world: FaultWorld, storage: string, blob: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of await world.storage.store(storage).readStream(blob, 0)) hash.update(chunk);
  return hash.digest('hex');
}

function blobOf(image: string, version: string, format: ImageFormat): string {
  return `${image}/${version}/${image}-${version}.${BLOB_EXTENSIONS[format]}`;
}

/**
 * The invariants every scenario ends with, over the names it made: no workflow left running on its task
 * queues; one catalog record per image@version; an available version has its committed blob with the
 * recorded SHA-256 (read back) and its metadata; a failed or cancelled one has no blob and no staged
 * blocks; no claim is left `uploading`; a file in a datastore that carries a final name has the
 * version's SHA-256.
 */
export async function checkInvariants(run: ScenarioRun): Promise<void> {
  const { world } = run;
  for (const queue of run.taskQueues) {
    let open: string[] = [];
    const deadline = Date.now() + 15_000;
    do {
      open = [];
      for await (const w of world.client.workflow.list({ query: `TaskQueue="${queue}" AND ExecutionStatus="Running"` }))
        open.push(w.workflowId);
      if (open.length > 0) await sleep(500);
    } while (open.length > 0 && Date.now() < deadline);
    check(open.length === 0, `workflows left running on ${queue}: ${open.join(', ')}`);
  }
  for (const image of run.images) {
    const records = await world.catalog.versions.list(image);
    const perVersion = new Map<string, number>();
    for (const r of records) perVersion.set(r.version, (perVersion.get(r.version) ?? 0) + 1);
    for (const [version, n] of perVersion) check(n === 1, `${n} catalog records for ${image}@${version}`);
    for (const r of records) {
      const where = `${r.image}@${r.version} (${r.status})`;
      const state = await blobState(world, r.location.storage, r.location.blob);
      if (r.status === 'available') {
        check(r.sha256 && r.metadata, `${where} lacks its SHA-256 or metadata`);
        check(state.exists, `${where} has no committed blob`);
        const props = await world.storage.store(r.location.storage).getProperties(r.location.blob);
        check(props.contentLength === r.sizeBytes, `${where}: blob is ${props.contentLength} bytes, record says ${r.sizeBytes}`);
        check(props.metadata.sha256 === r.sha256, `${where}: blob metadata sha256 ${props.metadata.sha256}, record ${r.sha256}`);
        const actual = await blobSha256(world, r.location.storage, r.location.blob);
        check(actual === r.sha256, `${where}: blob bytes hash to ${actual}, record says ${r.sha256}`);
      } else {
        check(
          r.status !== 'uploading',
          `${where}: a claim is left uploading after every run ended (owner ${r.owner?.workflowId})`,
        );
        check(!state.exists, `${where} has a committed blob`);
        check(state.uncommitted === 0, `${where} has ${state.uncommitted} staged blocks left`);
      }
    }
  }
  for (const root of run.datastores) {
    for (const image of fs.existsSync(root) ? fs.readdirSync(root) : []) {
      for (const version of fs.readdirSync(path.join(root, image))) {
        const dir = path.join(root, image, version);
        const record = await world.catalog.versions.get(image, version);
        for (const file of fs.readdirSync(dir)) {
          if (!Object.values(BLOB_EXTENSIONS).some((ext) => file === `${image}-${version}.${ext}`)) continue;
          const actual = await sha256OfFile(path.join(dir, file));
          check(
            actual === record?.sha256,
            `${path.join(dir, file)} carries a final name but hashes to ${actual}, not ${record?.sha256}`,
          );
        }
      }
    }
  }
}

function describeEnd(end: RunEnd): string {
  return end.failureType && end.status !== 'Cancelled' ? `${end.status} ${end.failureType}` : end.status;
}

function expectStatus(end: RunEnd, ...statuses: Array<RunEnd['status']>): void {
  check(
    statuses.includes(end.status),
    `${end.workflowId} ended ${describeEnd(end)}${end.failureMessage ? `: ${end.failureMessage}` : ''}, expected ${statuses.join(' or ')}`,
  );
}

/** A completed publish: the result's SHA-256 is the image's, and so is the blob's, read back. */
async function expectPublished(run: ScenarioRun, end: RunEnd, bytes: Buffer): Promise<PublishResult> {
  expectStatus(end, 'Completed');
  const result = end.result as PublishResult;
  const expected = sha256(bytes);
  check(result.sha256 === expected, `published SHA-256 ${result.sha256}, the image's is ${expected}`);
  const actual = await blobSha256(run.world, result.location.storage, result.location.blob);
  check(actual === expected, `the committed blob hashes to ${actual}, the image to ${expected}`);
  const record = await run.world.catalog.versions.get(result.image, result.version);
  check(
    record?.status === 'available' && record.sha256 === expected,
    `catalog has ${result.image}@${result.version} ${record?.status}`,
  );
  return result;
}

/** A failed or cancelled publish: the record says so (or there is none), and storage holds nothing of it. */
async function expectNothingPublished(
  run: ScenarioRun,
  image: string,
  version: string,
  format: ImageFormat,
  status: 'failed' | 'cancelled' | 'none',
): Promise<void> {
  const record = await run.world.catalog.versions.get(image, version);
  check((record?.status ?? 'none') === status, `catalog has ${image}@${version} ${record?.status ?? 'none'}, expected ${status}`);
  const state = await blobState(run.world, 'east-primary', blobOf(image, version, format));
  check(!state.exists, `${image}@${version} has a committed blob`);
  check(state.uncommitted === 0, `${image}@${version} has ${state.uncommitted} staged blocks left`);
}

/** A control worker and the proxies its storage traffic goes through, for one image's publish. */
class PublishRig {
  worker!: WorkerProcess;
  readonly queue: string;
  readonly env: NodeJS.ProcessEnv;
  readonly blocks: number;
  readonly version = '1.0.0';
  readonly source: string;

  private constructor(
    readonly run: ScenarioRun,
    readonly image: string,
    bytes: Buffer,
    format: ImageFormat,
    readonly east: HttpProxy,
    readonly west: HttpProxy,
    env: NodeJS.ProcessEnv,
  ) {
    this.queue = run.queue('control');
    this.blocks = Math.ceil(bytes.length / (BLOCK_MIB * MiB));
    this.source = run.writeImage(`${image}-${run.tag}.${BLOB_EXTENSIONS[format]}`, bytes);
    this.env = {
      ...run.world.env,
      VMHUB_TASK_QUEUE: this.queue,
      VMHUB_BLOCK_SIZE_MIB: String(BLOCK_MIB),
      VMHUB_TRANSFER_CONCURRENCY: String(CONCURRENCY),
      VMHUB_RANGE_FAN_OUT: '2',
      AZURITE_DC_EAST_PORT: String(east.port),
      AZURITE_DC_WEST_PORT: String(west.port),
      ...env,
    };
  }

  /** Storage reached through proxies slowed by `delayMs` per request, so each phase lasts long enough to be hit. */
  static async create(
    run: ScenarioRun,
    base: string,
    bytes: Buffer,
    format: ImageFormat,
    options: { delayMs?: number; env?: NodeJS.ProcessEnv } = {},
  ): Promise<PublishRig> {
    const east = await run.proxy(eastPort(run.world), options.delayMs ?? 300);
    const west = await run.proxy(westPort(run.world), options.delayMs ?? 300);
    const rig = new PublishRig(run, run.image(base), bytes, format, east, west, options.env ?? {});
    rig.startWorker();
    return rig;
  }

  startWorker(): void {
    this.worker = this.run.spawn(['control'], this.env);
  }

  async start(input: Partial<PublishInput> = {}, suffix = this.run.tag): Promise<string> {
    const workflowId = `publish:${this.image}:${input.version ?? this.version}:${suffix}`;
    await retrying(() =>
      this.run.world.client.workflow.start('PublishImage', {
        args: [{ source: this.source, image: this.image, version: this.version, ...input }],
        taskQueue: this.queue,
        workflowId,
      }),
    );
    return workflowId;
  }

  /** SIGKILLs the worker, leaving whatever it was doing where it was. */
  killWorker(): Promise<void> {
    return this.worker.kill();
  }

  unslow(): void {
    this.east.delayMs = 0;
    this.west.delayMs = 0;
  }

  blocksAtLeast(fraction: number): () => boolean {
    const n = Math.min(this.blocks, Math.max(1, Math.round(this.blocks * fraction)));
    return () => this.east.blockPuts >= n;
  }

  replicatedAtLeast(fraction: number): () => boolean {
    const n = Math.min(this.blocks, Math.max(1, Math.round(this.blocks * fraction)));
    return () => this.west.blockPuts >= n;
  }
}

/** A published image, an SDDC in dc-east and its agent, whose reads of the primary go through a slowed proxy. */
class DeployRig {
  agent!: WorkerProcess;
  readonly sddc: string;
  readonly agentQueue: string;
  readonly agentEnv: NodeJS.ProcessEnv;
  readonly dir: string;
  readonly file: string;

  private constructor(
    readonly run: ScenarioRun,
    readonly publish: PublishRig,
    readonly published: PublishResult,
    readonly east: HttpProxy,
    datastore: string,
  ) {
    this.sddc = `sddc-${run.tag}`;
    this.agentQueue = run.queue('agent');
    this.dir = path.join(datastore, published.image, published.version);
    this.file = `${published.image}-${published.version}.${BLOB_EXTENSIONS[published.format]}`;
    this.agentEnv = {
      ...run.world.env,
      VMHUB_AGENT_TASK_QUEUE: this.agentQueue,
      VMHUB_DATASTORE: datastore,
      VMHUB_TRANSFER_CONCURRENCY: String(CONCURRENCY),
      AZURITE_DC_EAST_PORT: String(east.port),
    };
  }

  static async create(run: ScenarioRun, base: string, options: { delayMs?: number } = {}): Promise<DeployRig> {
    const disk = noise(48 * MiB - 64 * 1024, run.seed);
    const bytes = ovaBytes('1.0.0', [{ name: 'disk1.vmdk', bytes: disk }]);
    const publish = await PublishRig.create(run, base, bytes, 'ova', { delayMs: 0 });
    const published = await expectPublished(run, await run.end(await publish.start({}, `${run.tag}-setup`)), bytes);
    const east = await run.proxy(eastPort(run.world), options.delayMs ?? 800);
    const datastore = path.join(run.world.services.config.dataDir, 'fault-sddcs', run.tag);
    run.datastores.add(datastore);
    const rig = new DeployRig(run, publish, published, east, datastore);
    await run.world.catalog.sddcs.add({
      name: rig.sddc,
      dataCenter: 'dc-east',
      taskQueue: rig.agentQueue,
      capacity: { cpus: 64, memoryMiB: 262144, diskGiB: 2048 },
    });
    await rig.startAgent();
    return rig;
  }

  /** Starts an agent and waits until it polls, since a deploy fails an SDDC whose agent does not. */
  async startAgent(): Promise<void> {
    this.agent = this.run.spawn(['agent', this.sddc], this.agentEnv);
    const view = temporalView(this.run.world.client);
    await until(
      'the agent to poll',
      async () => (await view.recentPollers(this.agentQueue, 'activity').catch(() => 0)) > 0,
      120_000,
    );
  }

  async start(): Promise<string> {
    const workflowId = `deploy:${this.published.image}:${this.published.version}:${this.run.tag}`;
    await retrying(() =>
      this.run.world.client.workflow.start('DeployToSDDCs', {
        args: [{ image: this.published.image, version: this.published.version, sddcs: [this.sddc] }],
        taskQueue: this.publish.queue,
        workflowId,
      }),
    );
    return workflowId;
  }

  get bytes(): number {
    return this.published.sizeBytes;
  }

  /** Bytes the agent's checkpoint on disk says are downloaded. */
  checkpointedBytes(): number {
    const state = path.join(this.dir, `.${this.file}.partial.json`);
    if (!fs.existsSync(state)) return 0;
    return Math.min(this.bytes, (JSON.parse(fs.readFileSync(state, 'utf8')) as { doneBelow: number }).doneBelow * AGENT_CHUNK);
  }

  /** The agent's files beside the final one: partial, its state, the lock. */
  leftovers(): string[] {
    return fs.existsSync(this.dir) ? fs.readdirSync(this.dir).filter((f) => f.startsWith('.')) : [];
  }

  onDisk(): string[] {
    return fs.existsSync(this.dir) ? fs.readdirSync(this.dir).sort() : [];
  }

  /** A completed deploy: the final file has the version's SHA-256, and no partial, state or lock file is left. */
  async expectDeployed(end: RunEnd): Promise<void> {
    expectStatus(end, 'Completed');
    const row = (end.result as DeployResult).results.find((r) => r.sddc === this.sddc);
    check(row?.status === 'deployed' || row?.status === 'already-present', `${this.sddc} is ${row?.status}: ${row?.reason}`);
    this.run.details.source = row.source;
    const actual = await sha256OfFile(path.join(this.dir, this.file));
    check(actual === this.published.sha256, `deployed file hashes to ${actual}, expected ${this.published.sha256}`);
    check(this.leftovers().length === 0, `left in ${this.dir}: ${this.leftovers().join(', ')}`);
  }
}

/** A fault and what must follow from it. `exclusive` ones stop a service, so they run alone in a world of their own. */
export interface Scenario {
  name: string;
  fault: string;
  exclusive?: boolean;
  run(r: ScenarioRun): Promise<void>;
}

const IMAGE_BYTES = 48 * MiB;

export type PublishKillPoint = 'staging' | 'all-blocks-staged' | 'commit' | 'mark-available' | 'replicating';

/**
 * SIGKILLs the control worker at one point of a publish, then starts a new one: the publish completes
 * with the image's bytes, and no block is staged twice but those in flight when the worker died. A
 * request held at the kill (the commit, the catalog write of markAvailable) is delivered afterwards, as
 * if it had left the dying worker, or with deliver=false never arrives.
 */
export function workerKill(point: PublishKillPoint, options: { fraction?: number; deliver?: boolean } = {}): Scenario {
  const fraction = options.fraction ?? 1 / 3;
  const deliver = options.deliver ?? true;
  const what: Record<PublishKillPoint, string> = {
    staging: `kill worker with ${Math.round(fraction * 100)}% of the blocks staged`,
    'all-blocks-staged': 'kill worker once storage holds every block, before it hears of the last',
    commit: `kill worker during its commit (Put Block List), which then ${deliver ? 'reaches' : 'never reaches'} storage`,
    'mark-available': `kill worker during markAvailable's write, which then ${deliver ? 'reaches' : 'never reaches'} the catalog`,
    replicating: `kill worker with ${Math.round(fraction * 100)}% of the blocks copied to the replica`,
  };
  return {
    name: `worker-kill/${point}`,
    fault: what[point],
    async run(r) {
      const bytes = isoBytes(IMAGE_BYTES, r.seed);
      const catalog = point === 'mark-available' ? await r.tcpProxy(port(r.world.services.config.mongodbUri)) : undefined;
      const env = catalog ? { MONGODB_URI: r.world.env.MONGODB_URI!.replace(/:\d+\//, `:${catalog.port}/`) } : {};
      const rig = await PublishRig.create(r, 'kill', bytes, 'iso', { env });
      let reached: (workflowId: string) => Promise<void>;
      let afterKill = () => {};
      if (point === 'staging') {
        reached = () => until('blocks to be staged', rig.blocksAtLeast(fraction), 120_000);
      } else if (point === 'replicating') {
        reached = () => until('blocks to be replicated', rig.replicatedAtLeast(fraction), 120_000);
      } else if (point === 'all-blocks-staged') {
        let answered = 0;
        const gate = rig.east.gate((q) => q.kind === 'stage-block' && ++answered === rig.blocks, 'response');
        reached = () => gate.reached;
        afterKill = () => gate.drop();
      } else if (point === 'commit') {
        const gate = rig.east.gate((q) => q.kind === 'commit-block-list', 'request');
        reached = () => gate.reached;
        afterKill = () => (deliver ? gate.open() : gate.drop());
      } else {
        const gate = rig.east.gate((q) => q.kind === 'commit-block-list', 'response');
        reached = async (workflowId) => {
          await gate.reached;
          catalog!.hold();
          gate.open();
          await until('markAvailable to start', () => activityRunning(r.world, workflowId, 'markAvailable'), 120_000);
        };
        afterKill = () => catalog!.release(deliver);
      }
      const workflowId = await rig.start();
      await reached(workflowId);
      await rig.killWorker();
      r.fault(what[point]);
      afterKill();
      rig.unslow();
      rig.startWorker();
      await expectPublished(r, await r.end(workflowId), bytes);
      const resent = rig.east.blockPuts - rig.blocks;
      Object.assign(r.details, {
        blocks: rig.blocks,
        blockPuts: rig.east.blockPuts,
        ...(await activityHistory(r.world, workflowId)),
      });
      const bound = point === 'staging' ? CONCURRENCY : 0;
      check(resent <= bound, `${resent} blocks were staged twice; at most ${bound} were in flight at the kill`);
    },
  };
}

export type DeployKillPoint = 'early' | 'mid' | 'verify';

/**
 * SIGKILLs an SDDC agent at one point of its download (after the first chunk, part way, or once every
 * byte has reached it and it verifies and renames), then starts a new one: the deploy completes, the
 * file is the version's bytes, no partial, state or lock file is left, and at most the chunks in flight
 * are fetched twice.
 */
export function agentKill(point: DeployKillPoint, options: { fraction?: number } = {}): Scenario {
  const fraction = options.fraction ?? 0.5;
  const what: Record<DeployKillPoint, string> = {
    early: 'kill agent once the first chunk has reached it',
    mid: `kill agent with ${Math.round(fraction * 100)}% of the image fetched`,
    verify: 'kill agent once every byte has reached it (verifying, renaming)',
  };
  return {
    name: `agent-kill/${point}`,
    fault: what[point],
    async run(r) {
      const rig = await DeployRig.create(r, 'deploy-kill');
      const reached =
        point === 'early'
          ? rig.east.answered((q) => q.kind === 'read')
          : point === 'verify'
            ? rig.east.answered(() => rig.east.readBytes >= rig.bytes)
            : until('part of the image to arrive', () => rig.east.readBytes >= rig.bytes * fraction, 120_000);
      const workflowId = await rig.start();
      await reached;
      await rig.agent.kill();
      r.fault(what[point]);
      const fetchedAtKill = rig.east.readBytes;
      const durable = rig.checkpointedBytes();
      r.details.onDiskAtKill = rig.onDisk();
      rig.east.delayMs = 0;
      await rig.startAgent();
      await rig.expectDeployed(await r.end(workflowId));
      const fetchedTwice = rig.east.readBytes - rig.bytes;
      // A new agent resumes from the last checkpoint on disk: it fetches again what was past it, and the reads in flight.
      const bound = fetchedAtKill - durable + CONCURRENCY * AGENT_CHUNK;
      Object.assign(r.details, {
        bytes: rig.bytes,
        fetchedAtKill,
        checkpointedAtKill: durable,
        bytesFetchedTwice: fetchedTwice,
        ...(await activityHistory(r.world, workflowId)),
      });
      check(
        fetchedTwice <= bound,
        `${fetchedTwice} bytes were fetched twice; ${fetchedAtKill - durable} were past the checkpoint or in flight`,
      );
    },
  };
}

/** Stops a service of the world, then starts it again on the same port and data folder. */
async function outage(r: ScenarioRun, service: string, downMs: number): Promise<void> {
  const { config, env } = r.world.services;
  await stopService(config, service);
  r.fault(`${service} stopped for ${Math.round(downMs / 1000)} s`);
  await sleep(downMs);
  await startService(config, service, { ...process.env, ...env });
}

export function azuriteOutageDuringPublish(downMs = 15_000, fraction = 1 / 3): Scenario {
  return {
    name: 'azurite-stop/publish',
    fault: `stop primary Azurite ${downMs / 1000} s with ${Math.round(fraction * 100)}% of the blocks staged`,
    exclusive: true,
    async run(r) {
      const bytes = isoBytes(IMAGE_BYTES, r.seed);
      const rig = await PublishRig.create(r, 'azurite-publish', bytes, 'iso');
      const workflowId = await rig.start();
      await until('blocks to be staged', rig.blocksAtLeast(fraction), 120_000);
      await outage(r, 'azurite dc-east', downMs);
      await expectPublished(r, await r.end(workflowId), bytes);
      Object.assign(r.details, {
        blocks: rig.blocks,
        blockPuts: rig.east.blockPuts,
        ...(await activityHistory(r.world, workflowId)),
      });
    },
  };
}

export function azuriteOutageDuringDeploy(downMs = 15_000, fraction = 0.25): Scenario {
  return {
    name: 'azurite-stop/deploy',
    fault: `stop primary Azurite ${downMs / 1000} s with ${Math.round(fraction * 100)}% of a download fetched`,
    exclusive: true,
    async run(r) {
      const rig = await DeployRig.create(r, 'azurite-deploy');
      const workflowId = await rig.start();
      await until('part of the image to arrive', () => rig.east.readBytes >= rig.bytes * fraction, 120_000);
      await outage(r, 'azurite dc-east', downMs);
      await rig.expectDeployed(await r.end(workflowId));
      Object.assign(r.details, { bytesRead: rig.east.readBytes, ...(await activityHistory(r.world, workflowId)) });
    },
  };
}

/** The catalog goes down as the commit's answer reaches the worker, so markAvailable meets the outage. */
export function catalogOutageDuringMarkAvailable(downMs = 15_000): Scenario {
  return {
    name: 'catalog-stop/mark-available',
    fault: `stop catalog ${downMs / 1000} s from the commit's answer on, through markAvailable`,
    exclusive: true,
    async run(r) {
      const bytes = isoBytes(IMAGE_BYTES, r.seed);
      const rig = await PublishRig.create(r, 'catalog-outage', bytes, 'iso');
      const gate = rig.east.gate((q) => q.kind === 'commit-block-list', 'response');
      const workflowId = await rig.start();
      await gate.reached;
      const down = outage(r, 'catalog', downMs);
      await until('the catalog to stop', () => r.faultAt !== undefined, 60_000);
      gate.open();
      await down;
      await expectPublished(r, await r.end(workflowId), bytes);
      const history = await activityHistory(r.world, workflowId);
      Object.assign(r.details, history);
      check(
        (history.attempts.markAvailable ?? 0) >= 2,
        `markAvailable ran ${history.attempts.markAvailable} time(s): the outage missed it`,
      );
    },
  };
}

export function temporalRestartDuringPublish(downMs = 5_000, fraction = 1 / 3): Scenario {
  return {
    name: 'temporal-restart/publish',
    fault: `restart Temporal (${downMs / 1000} s down, same SQLite file) with ${Math.round(fraction * 100)}% of the blocks staged`,
    exclusive: true,
    async run(r) {
      const bytes = isoBytes(IMAGE_BYTES, r.seed);
      const rig = await PublishRig.create(r, 'temporal-restart', bytes, 'iso');
      const workflowId = await rig.start();
      await until('blocks to be staged', rig.blocksAtLeast(fraction), 120_000);
      await outage(r, 'temporal', downMs);
      await expectPublished(r, await r.end(workflowId), bytes);
      r.details.workerStillRunning = rig.worker.child.exitCode === null && rig.worker.child.signalCode === null;
      Object.assign(r.details, await activityHistory(r.world, workflowId));
    },
  };
}

/**
 * Two runs publish different bytes as race@2.0.0 at the same moment: one completes; the other fails
 * fast with VersionConflict naming the winner's workflow ID, and the winner's blob is intact.
 */
export function versionRace(): Scenario {
  return {
    name: 'race/version-conflict',
    fault: 'two runs, other IDs and other bytes, publish race@2.0.0 at once',
    async run(r) {
      const bytes = [isoBytes(IMAGE_BYTES, r.seed), isoBytes(IMAGE_BYTES, r.seed + 1)];
      const rig = await PublishRig.create(r, 'race', bytes[0], 'iso');
      const second = r.writeImage(`race-b-${r.tag}.iso`, bytes[1]);
      const input = (source: string) => ({ source, image: rig.image, version: '2.0.0' });
      r.fault('both started');
      const ids = await Promise.all([rig.start(input(rig.source), `a-${r.tag}`), rig.start(input(second), `b-${r.tag}`)]);
      const ends = await Promise.all(ids.map((id) => r.end(id)));
      const winner = ends.findIndex((e) => e.status === 'Completed');
      check(winner >= 0, `neither run completed: ${ends.map(describeEnd).join(', ')}`);
      const loser = ends[1 - winner];
      expectStatus(loser, 'Failed');
      check(loser.failureType === 'VersionConflict', `the other run failed with ${loser.failureType}: ${loser.failureMessage}`);
      check(
        loser.failureMessage?.includes(ends[winner].workflowId),
        `VersionConflict does not name the owner: ${loser.failureMessage}`,
      );
      const loserSeconds = (loser.closedAt - loser.startedAt) / 1000;
      check(loser.closedAt < ends[winner].closedAt && loserSeconds < 30, `the conflict took ${loserSeconds}s, not failing fast`);
      await expectPublished(r, ends[winner], bytes[winner]);
      Object.assign(r.details, {
        winner: ends[winner].workflowId,
        loser: loser.workflowId,
        loserSeconds,
        message: loser.failureMessage,
      });
    },
  };
}

/**
 * The world's repository served over http through a proxy, for a publish whose source reads a scenario
 * holds at a gate; the workers must then be given `env`.
 */
async function httpRepository(
  r: ScenarioRun,
): Promise<{ proxy: HttpProxy; url: (file: string) => string; env: NodeJS.ProcessEnv }> {
  const server = await startFileServer(r.world.services.repository);
  r.later(() => server.close());
  const proxy = await r.proxy(port(server.origin));
  return {
    proxy,
    url: (file) => `http://127.0.0.1:${proxy.port}/${encodeURIComponent(file)}`,
    env: { VMHUB_SOURCE_HOSTS: '127.0.0.1' },
  };
}

/** How long a bad image may take to be refused from the bytes before the reads held back. */
const VERDICT_MS = 45_000;
/** Longer than a cancel takes to reach an activity (its next heartbeat), shorter than a write's grace. */
const UPLOADS_HELD_MS = 20_000;

/**
 * An OVA whose tar stream turns to garbage after its first members must fail InvalidImage, never
 * retried; one whose manifest misstates its first disk, before a larger second disk, must fail
 * ManifestMismatch while its blocks are still staging. The image is read over http and every read from
 * the second block past the bad member on is held: the verdict may take the bytes up to the bad member
 * and one block of read-ahead, not the rest of the image. The first uploads are held at the storage
 * proxy for a while and then delivered, so the failure finds them under way, as a loaded service would:
 * cleanup must wait for them, not race them. Either way the run ends Failed, the version `failed`, and
 * nothing is left in storage.
 */
export function badImage(kind: 'corrupt-tar' | 'manifest-mismatch'): Scenario {
  const corrupt = kind === 'corrupt-tar';
  const block = BLOCK_MIB * MiB;
  return {
    name: corrupt ? 'bad-image/corrupt-tar' : 'bad-image/manifest-mismatch',
    fault: corrupt
      ? 'OVA: garbage tar header after .ovf, .mf and disk, then 32 MiB more'
      : 'OVA: manifest misstates disk1 (4 MiB); disk2 (40 MiB) follows',
    async run(r) {
      const bytes = corrupt
        ? ovaBytes('1.0.0', [{ name: 'disk1.vmdk', bytes: noise(8 * MiB, r.seed) }], { garbage: 32 * MiB })
        : ovaBytes(
            '1.0.0',
            [
              { name: 'disk1.vmdk', bytes: noise(4 * MiB, r.seed) },
              { name: 'disk2.vmdk', bytes: noise(40 * MiB, r.seed + 1) },
            ],
            { wrongDigest: ['disk1.vmdk'] },
          );
      // Where the image goes bad: the garbage header before the last 32 MiB, or the end of disk1, before disk2's header.
      const badAt = corrupt ? bytes.length - 32 * MiB - 512 : bytes.length - END_OF_ARCHIVE.length - 40 * MiB - 512;
      const heldFrom = (Math.floor(badAt / block) + 2) * block;
      const http = await httpRepository(r);
      const held = http.proxy.gate((q) => q.kind === 'read' && (q.offset ?? 0) >= heldFrom, 'request');
      const rig = await PublishRig.create(r, corrupt ? 'corrupt' : 'mismatch', bytes, 'ova', { delayMs: 0, env: http.env });
      const uploads = rig.east.gate((q) => q.kind === 'stage-block', 'request');
      const delivered = uploads.reached.then(() => sleep(UPLOADS_HELD_MS)).then(() => uploads.open());
      const workflowId = await rig.start({ source: http.url(rig.source) });
      r.fault(`reads from byte ${heldFrom} on held`);
      const verdict = await runEnd(r.world, workflowId, VERDICT_MS).then(
        () => 'while the later reads were held',
        () => `only after the reads from byte ${heldFrom} on were let through, ${VERDICT_MS / 1000}s on`,
      );
      held.open();
      const end = await r.end(workflowId);
      // Whatever the uploads held at the proxy do, they have done it before storage is looked at.
      await delivered;
      await rig.east.settled();
      const history = await activityHistory(r.world, workflowId);
      Object.assign(r.details, {
        message: end.failureMessage,
        verdict,
        blocks: rig.blocks,
        stagedAtEnd: rig.east.blockPuts,
        ...history,
      });
      expectStatus(end, 'Failed');
      const type = corrupt ? 'InvalidImage' : 'ManifestMismatch';
      check(end.failureType === type, `failed with ${end.failureType} (${end.failureMessage}), expected ${type}`);
      check(history.attempts.inspectSource === 1, `inspectSource ran ${history.attempts.inspectSource} times`);
      await expectNothingPublished(r, rig.image, rig.version, 'ova', 'failed');
      check(verdict.startsWith('while'), `the run failed ${type} ${verdict}: the verdict waited for bytes past the bad member`);
      check(
        history.cancels.some((c) => c.activity === 'stageBlockRange'),
        'the failure found staging finished instead of cancelling it',
      );
    },
  };
}

export type PublishCancelPoint = 'probing' | 'staging' | 'committing' | 'replicating';

/**
 * Cancels a publish in one phase. Before the version is available the run ends Cancelled with the
 * version `cancelled` (or no record when nothing was claimed yet), no blob and no staged blocks; during
 * replication the version is already available and stays so.
 */
export function publishCancel(point: PublishCancelPoint, options: { fraction?: number } = {}): Scenario {
  const fraction = options.fraction ?? 1 / 3;
  return {
    name: `cancel/${point}`,
    fault: {
      probing: 'cancel while probeSource reads an http source held open',
      staging: `cancel with ${Math.round(fraction * 100)}% of the blocks staged`,
      committing: 'cancel while the commit (Put Block List) is in flight',
      replicating: `cancel with ${Math.round(fraction * 100)}% of the blocks copied to the replica`,
    }[point],
    async run(r) {
      const bytes = isoBytes(IMAGE_BYTES, r.seed);
      // Probing reads the source: an http one, whose every read waits at a gate until the cancel is in.
      const http = point === 'probing' ? await httpRepository(r) : undefined;
      const sourceGate = http?.proxy.gate(() => true, 'request');
      const rig = await PublishRig.create(r, `cancel-${point}`, bytes, 'iso', { env: http?.env });
      const commitGate = point === 'committing' ? rig.east.gate((q) => q.kind === 'commit-block-list', 'request') : undefined;
      const workflowId = await rig.start(http ? { source: http.url(rig.source) } : {});
      const handle = r.world.client.workflow.getHandle(workflowId);
      if (sourceGate) await sourceGate.reached;
      else if (commitGate) await commitGate.reached;
      else if (point === 'staging') await until('blocks to be staged', rig.blocksAtLeast(fraction), 120_000);
      else await until('blocks to be replicated', rig.replicatedAtLeast(fraction), 120_000);
      r.details.phaseAtCancel = (await handle.query<PublishProgress>('progress')).phase;
      await handle.cancel();
      r.fault(`cancel in ${point}`);
      sourceGate?.open();
      commitGate?.open();
      const end = await r.end(workflowId);
      if (point === 'replicating') {
        expectStatus(end, 'Cancelled', 'Completed');
        const record = await r.world.catalog.versions.get(rig.image, rig.version);
        check(record?.status === 'available', `after a cancel during replication the version is ${record?.status}`);
      } else {
        expectStatus(end, 'Cancelled');
        await expectNothingPublished(r, rig.image, rig.version, 'iso', point === 'probing' ? 'none' : 'cancelled');
      }
      r.details.cleanup = (await retrying(() => handle.query<PublishProgress>('progress'))).cleanup;
    },
  };
}

/**
 * Cancels a deploy while its agent downloads: the run ends Cancelled and the agent leaves no partial,
 * state or lock file. Only a download that finished before the cancel reached it leaves the final file,
 * recorded as deployed (whose bytes the invariants check).
 */
export function deployCancel(fraction = 0.25): Scenario {
  return {
    name: 'cancel/deploy-download',
    fault: `cancel a deploy with ${Math.round(fraction * 100)}% fetched, the other reads hanging`,
    async run(r) {
      const rig = await DeployRig.create(r, 'cancel-deploy', { delayMs: 1000 });
      const workflowId = await rig.start();
      await until('part of the image to arrive', () => rig.east.readBytes >= rig.bytes * fraction, 120_000);
      rig.east.delayMs = 30_000;
      r.details.fetchedAtCancel = rig.east.readBytes;
      await r.world.client.workflow.getHandle(workflowId).cancel();
      r.fault('cancel during download');
      expectStatus(await r.end(workflowId), 'Cancelled');
      check(rig.leftovers().length === 0, `left in ${rig.dir}: ${rig.leftovers().join(', ')}`);
      const [row] = await r.world.catalog.deployments.of(rig.published.image, rig.published.version);
      r.details.row = { status: row?.status, error: row?.error };
      const deployed = rig.onDisk().includes(rig.file);
      check(!deployed || row?.status === 'deployed', `a cancelled deploy left ${rig.file}, recorded ${row?.status}`);
      check(deployed || row?.status === 'failed', `the cancelled deploy is recorded ${row?.status}`);
    },
  };
}

/** What one scenario came to: its runs' ends, how long they took, and whether every check held. */
export interface FaultOutcome {
  scenario: string;
  fault: string;
  world: string;
  outcome: string;
  /** From the start of the scenario's last run to be started to its end, as Temporal recorded them. */
  secondsToEnd: number | null;
  /** From the fault to the end of the last run. */
  secondsAfterFault: number | null;
  passed: boolean;
  error?: string;
  runs: Array<{ workflowId: string; status: string; failureType?: string; seconds: number }>;
  details: Record<string, unknown>;
}

const active = new Set<ScenarioRun>();

/** Stops the processes and proxies of the scenarios still running, when their caller is interrupted. */
export async function stopActiveScenarios(): Promise<void> {
  await Promise.all([...active].map((run) => run.cleanup()));
}

export async function runScenario(
  scenario: Scenario,
  world: FaultWorld,
  tag: string,
  seed: number,
  logRoot: string,
): Promise<FaultOutcome> {
  const logDir = path.join(logRoot, `${tag}-${scenario.name.replace(/[^a-z0-9]+/gi, '-')}`);
  fs.mkdirSync(logDir, { recursive: true });
  const run = new ScenarioRun(world, tag, seed, logDir);
  active.add(run);
  const clock = { started: Date.now(), ran: 0, cleaned: 0, checked: 0 };
  let error: string | undefined;
  try {
    await scenario.run(run);
  } catch (err) {
    error = (err as Error).message;
  }
  clock.ran = Date.now();
  await run.cleanup();
  active.delete(run);
  clock.cleaned = Date.now();
  if (error === undefined) {
    try {
      await checkInvariants(run);
    } catch (err) {
      error = `invariant: ${(err as Error).message}`;
    }
  }
  clock.checked = Date.now();
  run.details.wallSeconds = {
    scenario: round((clock.ran - clock.started) / 1000),
    cleanup: round((clock.cleaned - clock.ran) / 1000),
    checks: round((clock.checked - clock.cleaned) / 1000),
  };
  const last = run.ends.filter((e) => !e.workflowId.endsWith('-setup'));
  const closedAt = Math.max(...last.map((e) => e.closedAt));
  return {
    scenario: scenario.name,
    fault: scenario.fault,
    world: world.services.name,
    outcome: last.map(describeEnd).join(' + ') || 'no run ended',
    secondsToEnd: last.length > 0 ? round((closedAt - Math.min(...last.map((e) => e.startedAt))) / 1000) : null,
    secondsAfterFault: last.length > 0 && run.faultAt !== undefined ? round((closedAt - run.faultAt) / 1000) : null,
    passed: error === undefined,
    error,
    runs: run.ends.map((e) => ({
      workflowId: e.workflowId,
      status: e.status,
      failureType: e.failureType,
      seconds: round((e.closedAt - e.startedAt) / 1000),
    })),
    details: { logs: logDir, ...run.details },
  };
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}

/** At most `limit` calls of fn at once. */
function limiter(limit: number): <T>(fn: () => Promise<T>) => Promise<T> {
  let active = 0;
  const queue: Array<() => void> = [];
  return async (fn) => {
    while (active >= limit) await new Promise<void>((resolve) => queue.push(resolve));
    active++;
    try {
      return await fn();
    } finally {
      active--;
      queue.shift()?.();
    }
  };
}

/**
 * Runs the scenarios, in their order: those that only kill processes or cancel run `concurrency` at a
 * time in the shared world; those that stop a service run one at a time in the exclusive world, whose
 * outages then touch no other scenario. Each scenario's promise settles with its outcome, never rejects.
 */
export function runScenarios(
  scenarios: Scenario[],
  worlds: { shared: FaultWorld; exclusive: FaultWorld },
  options: { concurrency: number; seed: number; logRoot: string; onOutcome?: (o: FaultOutcome) => void },
): Array<Promise<FaultOutcome>> {
  const shared = limiter(options.concurrency);
  const exclusive = limiter(1);
  return scenarios.map((s, i) =>
    (s.exclusive ? exclusive : shared)(async () => {
      const tag = `${String(i + 1).padStart(2, '0')}${randomUUID().slice(0, 4)}`;
      const outcome = await runScenario(
        s,
        s.exclusive ? worlds.exclusive : worlds.shared,
        tag,
        options.seed + i * 7919,
        options.logRoot,
      );
      options.onOutcome?.(outcome);
      return outcome;
    }),
  );
}

/** The outcomes as a plain-text table, one scenario a line. */
export function outcomeTable(outcomes: FaultOutcome[]): string {
  const rows = [
    ['#', 'scenario', 'fault', 'outcome', 'to end (s)', 'after fault (s)', 'check'],
    ...outcomes.map((o, i) => [
      String(i + 1),
      o.scenario,
      o.fault,
      o.outcome,
      o.secondsToEnd?.toFixed(1) ?? '-',
      o.secondsAfterFault?.toFixed(1) ?? '-',
      o.passed ? 'pass' : `FAIL: ${o.error}`,
    ]),
  ];
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]))).join('  ')).join('\n');
}

export function writeOutcomes(file: string, meta: Record<string, unknown>, outcomes: FaultOutcome[]): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const passed = outcomes.filter((o) => o.passed).length;
  fs.writeFileSync(
    file,
    JSON.stringify({ ...meta, scenarios: outcomes.length, passed, failed: outcomes.length - passed, outcomes }, null, 2),
  );
}
