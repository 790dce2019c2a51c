import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { WorkflowFailedError, type Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { NativeConnection, Worker } from '@temporalio/worker';
import type { ActivityDeps } from '../src/activities';
import { loadConfig, type Config } from '../src/config';
import { SEARCH_ATTRIBUTES } from '../src/dev-services/embedded';
import { temporalBinary } from '../src/dev-services/tools';
import { installLogging } from '../src/temporal/logging';
import type { BlockStore } from '../src/storage/block-store';
import { connectClient, connectWorker } from '../src/temporal/connection';
import { transferTaskQueueOf } from '../src/shared/task-queues';
import { createControlWorkers, openDeps, runWorkers } from '../src/temporal/worker';
import { runVmhub, type Ran } from './cli/run-vmhub';

export type { Ran };

/** The control workers on task queues of their own, running in this process against the test services. */
export interface TestWorld {
  config: Config;
  deps: ActivityDeps;
  client: Client;
  workers: Worker[];
  close(): Promise<void>;
}

/**
 * A namespace of the test server for one test file, with vmhub's search attributes: what is namespace-wide
 * (the schedules every control worker makes sure of at start) is then the file's alone.
 */
function createNamespace(base: Config, namespace: string): Config['temporal'] {
  const temporal = (...args: string[]) =>
    execFileSync(temporalBinary(), [...args, '--namespace', namespace, '--address', base.temporal.address], { stdio: 'ignore' });
  temporal('operator', 'namespace', 'create');
  for (const [name, type] of Object.entries(SEARCH_ATTRIBUTES))
    temporal('operator', 'search-attribute', 'create', '--name', name, '--type', type);
  return { ...base.temporal, namespace };
}

export async function startWorld(overrides: Partial<Config> = {}, options: { ownNamespace?: boolean } = {}): Promise<TestWorld> {
  installLogging((process.env.VMHUB_LOG_LEVEL as 'WARN' | undefined) ?? 'ERROR');
  const loaded = loadConfig();
  const base = options.ownNamespace
    ? { ...loaded, temporal: createNamespace(loaded, `vmhub-${randomUUID().slice(0, 8)}`) }
    : loaded;
  // Each test file gets a catalog database of its own, so registrations and records never cross.
  const mongodbUri = base.mongodbUri.replace(/\/[^/?]*(\?|$)/, `/vmhub_${randomUUID().slice(0, 8)}$1`);
  const taskQueue = overrides.taskQueue ?? `test-${randomUUID()}`;
  const config: Config = { ...base, taskQueue, transferTaskQueue: transferTaskQueueOf(taskQueue), mongodbUri, ...overrides };
  // Worker processes the test spawns (agents check their SDDC is registered) read the same catalog and namespace.
  const previous = { MONGODB_URI: process.env.MONGODB_URI, TEMPORAL_NAMESPACE: process.env.TEMPORAL_NAMESPACE };
  process.env.MONGODB_URI = config.mongodbUri;
  process.env.TEMPORAL_NAMESPACE = config.temporal.namespace;
  const deps = await openDeps(config);
  await deps.storage.ensureContainers();
  const connection: NativeConnection = await connectWorker(config.temporal);
  const workers = await createControlWorkers(connection, deps);
  const running = runWorkers(workers);
  const client = await connectClient(config.temporal);
  return {
    config,
    deps,
    client,
    workers,
    async close() {
      for (const w of workers) w.shutdown();
      await running;
      await connection.close();
      await client.connection.close();
      await deps.close();
      for (const [name, value] of Object.entries(previous)) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    },
  };
}

/** A committed blob's bytes, read whole. */
export async function readBlob(store: BlockStore, blob: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of await store.readStream(blob, 0)) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** Deterministic, incompressible bytes: the same seed always gives the same file. */
export function writeImageFile(file: string, sizeBytes: number, seed = 1): string {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const fd = fs.openSync(file, 'w');
  const chunk = Buffer.alloc(1024 * 1024);
  let x = seed >>> 0 || 1;
  for (let written = 0; written < sizeBytes;) {
    for (let i = 0; i < chunk.length; i += 4) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      chunk.writeUInt32LE(x >>> 0, i);
    }
    const n = Math.min(chunk.length, sizeBytes - written);
    fs.writeSync(fd, chunk, 0, n);
    written += n;
  }
  fs.closeSync(fd);
  return file;
}

/** An image the publish accepts as an ISO: `writeImageFile`'s bytes with an ISO 9660 volume descriptor. */
export function writeIsoFile(file: string, sizeBytes: number, seed = 1): string {
  writeImageFile(file, sizeBytes, seed);
  const fd = fs.openSync(file, 'r+');
  fs.writeSync(fd, Buffer.from('\x01CD001\x01', 'latin1'), 0, 7, 32768);
  fs.closeSync(fd);
  return file;
}

export function repositoryRoot(): string {
  return loadConfig().repositoryRoots[0];
}

/** The ApplicationFailure a workflow run ended with; fails the test if the run succeeded or failed otherwise. */
export async function workflowFailure(run: Promise<unknown>): Promise<ApplicationFailure> {
  const err = await run.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  const cause = (err as WorkflowFailedError).cause;
  expect(cause).toBeInstanceOf(ApplicationFailure);
  return cause as ApplicationFailure;
}

/** The vmhub CLI (bin/vmhub.js) as an operator runs it, against the world's services and control workers. */
export function vmhubCli(world: TestWorld): (...args: string[]) => Promise<Ran> {
  const env = {
    ...process.env,
    VMHUB_TASK_QUEUE: world.config.taskQueue,
    MONGODB_URI: world.config.mongodbUri,
    VMHUB_LOG_LEVEL: 'ERROR',
  };
  return (...args) => runVmhub(args, env);
}
