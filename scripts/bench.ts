import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { Worker } from '@temporalio/worker';
import { Catalog } from '../src/catalog/catalog';
import { loadConfig, PROJECT_ROOT, type Config } from '../src/config';
import type { DeployResult } from '../src/shared/deploy-input';
import { installLogging } from '../src/temporal/logging';
import { requireWorker } from '../src/cli/operations';
import type { PublishResult } from '../src/shared/publish-input';
import { startServices, stopProcessGroup, stopServices } from '../src/dev-services/embedded';
import { WORKER_NODE_FLAGS } from '../src/dev-services/worker-process';
import { planBlocks } from '../src/shared/block-plan';
import { plural } from '../src/shared/units';
import { TopologyBlockStores } from '../src/storage/backends';
import { blobServiceClient } from '../src/storage/azure/clients';
import { connectClient, connectWorker } from '../src/temporal/connection';
import { findLocation, loadTopology } from '../src/topology/topology';
import { workflowSource } from '../src/temporal/worker';
import { startCountingProxy } from '../test/harness/counting-proxy';
import { accountingActivities } from '../test/harness/simulated-publish';
import { buildBundle } from './build-bundle';
import { agentTaskQueueOf, transferTaskQueueOf } from '../src/shared/task-queues';

/**
 * `npm run bench`: the performance checks on embedded services started for the run. Each
 * throughput figure is a ratio against the plain @azure/storage-blob call doing the same transfer on the
 * same Azurite (uploads with the same block size and concurrency; downloadToFile is one streamed GET, it
 * takes no concurrency); every pair runs BENCH_REPEATS times (default 5, at least 3),
 * alternating which of the two goes first, and the ratios are reported as median, min and max. The
 * workers are what production runs: the compiled sources with the prebuilt workflow bundle, built here.
 *
 * BENCH_GIB sets the image size (default 1; 0.25 for a quick run); memory is also measured at 4×.
 * Results go to bench/results.json and the table to test-output/bench.md.
 */
const GiB = 2 ** 30;
const MiB = 2 ** 20;
const BLOCK_MIB = 8;
const FAN_OUT = 2;
const PER_ACTIVITY = 4;
const CONCURRENCY = FAN_OUT * PER_ACTIVITY;
const SIZE = Math.round(Number(process.env.BENCH_GIB ?? 1) * GiB);
const REPEATS = Math.max(3, Number(process.env.BENCH_REPEATS ?? 5));
const SDDCS = ['bench-a', 'bench-b', 'bench-c'];

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/**
 * An ISO-shaped image: a primary volume descriptor where ISO 9660 puts it, then incompressible-enough
 * content without spending minutes on randomness (one random block, varied per block).
 */
function writeImage(file: string, size: number): void {
  const block = randomBytes(BLOCK_MIB * MiB);
  const fd = fs.openSync(file, 'w');
  for (let at = 0, i = 0; at < size; at += block.length, i++) {
    block.writeUInt32LE(i, 0);
    if (i === 0) block.write('\x01CD001\x01', 32768, 'latin1');
    else block.write('\0\0\0\0\0\0\0', 32768, 'latin1');
    fs.writeSync(fd, block, 0, Math.min(block.length, size - at));
  }
  fs.closeSync(fd);
}

/** CPU seconds (all threads) and memory of a process, from /proc. */
function proc(pid: number): { cpu: number; rssMiB: number; peakMiB: number } {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN);
  return {
    cpu: (Number(fields[11]) + Number(fields[12])) / 100,
    rssMiB: kib('VmRSS') / 1024,
    peakMiB: kib('VmHWM') / 1024,
  };
}

async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; seconds: number }> {
  const t = process.hrtime.bigint();
  const value = await fn();
  return { value, seconds: Number(process.hrtime.bigint() - t) / 1e9 };
}

function stats(values: number[]): { median: number; min: number; max: number } {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  return { median, min: sorted[0], max: sorted[sorted.length - 1] };
}

const round = (n: number, digits = 2) => Number(n.toFixed(digits));

/** A vmhub worker process as production runs it: compiled code, the prebuilt workflow bundle. */
interface AppProcess {
  child: ChildProcess;
  logFile: string;
  stop(): Promise<void>;
  kill(): Promise<void>;
}

interface Pair {
  vmhubSeconds: number;
  baselineSeconds: number;
  ratio: number;
  vmhubCpu: number;
  baselineCpu: number;
}

interface PairFigure {
  /** Throughput of vmhub over that of the plain SDK: baseline seconds / vmhub seconds. */
  ratio: { median: number; min: number; max: number };
  vmhubMiBps: number;
  baselineMiBps: number;
  /** CPU seconds per GiB moved: every thread of vmhub's worker or agents, and of the bench process for the SDK. */
  cpuSecondsPerGiB?: { vmhub: number; baseline: number };
  runs: Array<{ vmhubSeconds: number; baselineSeconds: number; ratio: number }>;
}

interface Figures {
  publish: PairFigure & { sourceReadsPerByte: number };
  deploy: PairFigure;
  deployThree: PairFigure;
  deltaDeploy: DeltaDeployFigure;
  replication: PairFigure;
  /** VerifyReplicas' read and hash of one replica, against a streamed read hashed in the bench process. */
  verifyRead: PairFigure;
  memory: { idleMiB: { small: number; large: number }; peakMiB: { small: number; large: number }; largeOverSmall: number };
  resume: {
    sentAtKillMiB: number;
    bytesResentMiB: number;
    inFlightBoundMiB: number;
    seconds: number;
    extraSeconds: number;
    heartbeatTimeoutSeconds: number;
  };
  history: { small: number; simulatedTiB: number; simulatedBlocks: number };
}

function pairFigure(pairs: Pair[], bytes: number, withCpu = true): PairFigure {
  const ratio = stats(pairs.map((p) => p.ratio));
  const rate = (s: number) => round(bytes / MiB / s, 0);
  return {
    ratio: { median: round(ratio.median), min: round(ratio.min), max: round(ratio.max) },
    vmhubMiBps: stats(pairs.map((p) => rate(p.vmhubSeconds))).median,
    baselineMiBps: stats(pairs.map((p) => rate(p.baselineSeconds))).median,
    cpuSecondsPerGiB: withCpu
      ? {
          vmhub: round(stats(pairs.map((p) => p.vmhubCpu)).median / (bytes / GiB)),
          baseline: round(stats(pairs.map((p) => p.baselineCpu)).median / (bytes / GiB)),
        }
      : undefined,
    runs: pairs.map((p) => ({
      vmhubSeconds: round(p.vmhubSeconds),
      baselineSeconds: round(p.baselineSeconds),
      ratio: round(p.ratio),
    })),
  };
}

/** Runs each pair REPEATS times, alternating which of the two goes first. */
async function pairs(
  name: string,
  vmhub: () => Promise<{ seconds: number; cpu: number }>,
  baseline: () => Promise<{ seconds: number; cpu: number }>,
): Promise<Pair[]> {
  const out: Pair[] = [];
  for (let r = 0; r < REPEATS; r++) {
    const [first, second] = r % 2 === 0 ? [baseline, vmhub] : [vmhub, baseline];
    const a = await first();
    const b = await second();
    const [v, p] = r % 2 === 0 ? [b, a] : [a, b];
    out.push({
      vmhubSeconds: v.seconds,
      baselineSeconds: p.seconds,
      ratio: p.seconds / v.seconds,
      vmhubCpu: v.cpu,
      baselineCpu: p.cpu,
    });
    process.stderr.write(
      `bench: ${name} ${r + 1}/${REPEATS}: vmhub ${v.seconds.toFixed(2)} s, plain SDK ${p.seconds.toFixed(2)} s, ratio ${(p.seconds / v.seconds).toFixed(2)}\n`,
    );
  }
  return out;
}

/** The plain SDK's CPU: this process's, over the call (the bench does nothing else meanwhile). */
async function baselineRun(fn: () => Promise<unknown>): Promise<{ seconds: number; cpu: number }> {
  const cpu = process.cpuUsage();
  const { seconds } = await timed(fn);
  const used = process.cpuUsage(cpu);
  return { seconds, cpu: (used.user + used.system) / 1e6 };
}

/** What the publish inspections in a worker log say about the tap: blocks handed over, blocks read again. */
function inspections(logFile: string): Array<{ fromTap: number; readHere: number }> {
  return fs
    .readFileSync(logFile, 'utf8')
    .split('\n')
    .filter((l) => l.includes('"msg":"inspected"'))
    .map((l) => JSON.parse(l) as { fromTap: number; readHere: number });
}

async function main(): Promise<void> {
  installLogging('WARN');
  const startedAt = new Date();
  const loadBefore = os.loadavg();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmhub-bench-'));
  const app = path.join(dir, 'app');
  process.stderr.write(`bench: building the worker into ${app}\n`);
  execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.build.json', '--outDir', app], {
    cwd: PROJECT_ROOT,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  fs.symlinkSync(path.join(PROJECT_ROOT, 'node_modules'), path.join(app, 'node_modules'));
  const bundle = path.join(app, 'workflow-bundle.js');
  await buildBundle(bundle);

  const [temporal, ui, catalogPort, east, west] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
  // Two topologies: publish and deploy measured on the primary alone, as the plain SDK writes once;
  // replication measured between the two data centers.
  const full = JSON.parse(fs.readFileSync(path.join(PROJECT_ROOT, 'config', 'topology.json'), 'utf8'));
  full.sddcs = [];
  const topologyFull = path.join(dir, 'topology-full.json');
  fs.writeFileSync(topologyFull, JSON.stringify(full));
  const primaryOnly = {
    ...full,
    storage: full.storage.filter((s: { role: string }) => s.role === 'primary'),
    dataCenters: full.dataCenters.filter((d: { id: string }) => d.id === 'dc-east').map((d: object) => ({ ...d, nearest: [] })),
  };
  const topologyPrimary = path.join(dir, 'topology-primary.json');
  fs.writeFileSync(topologyPrimary, JSON.stringify(primaryOnly));
  const env = {
    VMHUB_DATA_DIR: dir,
    TEMPORAL_ADDRESS: `127.0.0.1:${temporal}`,
    TEMPORAL_UI_PORT: String(ui),
    MONGODB_URI: `mongodb://127.0.0.1:${catalogPort}/vmhub`,
    AZURITE_DC_EAST_PORT: String(east),
    AZURITE_DC_WEST_PORT: String(west),
    VMHUB_TOPOLOGY: topologyPrimary,
    VMHUB_REPOSITORY_ROOTS: path.join(dir, 'repository'),
    VMHUB_BLOCK_SIZE_MIB: String(BLOCK_MIB),
    VMHUB_TRANSFER_CONCURRENCY: String(PER_ACTIVITY),
    VMHUB_RANGE_FAN_OUT: String(FAN_OUT),
    VMHUB_WORKFLOW_BUNDLE: bundle,
    VMHUB_LOG_LEVEL: 'INFO',
  };
  Object.assign(process.env, env, { VMHUB_TOPOLOGY: topologyFull });
  const config: Config = loadConfig();
  fs.mkdirSync(config.repositoryRoots[0], { recursive: true });
  process.stderr.write(
    `bench: services in ${dir}; images of ${SIZE / GiB} GiB and ${(4 * SIZE) / GiB} GiB, ${REPEATS} runs a pair\n`,
  );
  await startServices(config);
  const topology = loadTopology(topologyFull);
  await new TopologyBlockStores(topology).ensureContainers();
  // The baselines are the plain SDK's own calls, on the same containers.
  const container = (locationId: string) => {
    const location = findLocation(topology, locationId);
    return blobServiceClient(location).getContainerClient(location.container);
  };
  const client = await connectClient(config.temporal);
  const catalog = await Catalog.connect(config.mongodbUri);
  /** An activity's seconds from its start to its completion, as the run's history has them. */
  const activitySeconds = async (workflowId: string, type: string): Promise<number> => {
    const events = (await client.workflow.getHandle(workflowId).fetchHistory()).events!;
    const scheduled = events.find((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === type)!;
    const byScheduled = (e: (typeof events)[number]) =>
      Number((e.activityTaskStartedEventAttributes ?? e.activityTaskCompletedEventAttributes)?.scheduledEventId ?? -1) ===
      Number(scheduled.eventId);
    const started = events.find((e) => e.activityTaskStartedEventAttributes && byScheduled(e))!;
    const completed = events.find((e) => e.activityTaskCompletedEventAttributes && byScheduled(e))!;
    const ms = (e: (typeof events)[number]) => Number(e.eventTime!.seconds) * 1000 + e.eventTime!.nanos! / 1e6;
    return (ms(completed) - ms(started)) / 1000;
  };
  const running = new Set<AppProcess>();

  const spawnApp = (args: string[], extra: NodeJS.ProcessEnv, name: string): AppProcess => {
    const logFile = path.join(dir, 'logs', `${name}.log`);
    fs.mkdirSync(path.dirname(logFile), { recursive: true });
    const log = fs.openSync(logFile, 'a');
    const child = spawn(process.execPath, [...WORKER_NODE_FLAGS, path.join(app, 'temporal', 'worker.js'), ...args], {
      cwd: app,
      env: { ...process.env, ...env, ...extra },
      detached: true,
      stdio: ['ignore', log, log],
    });
    fs.closeSync(log);
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const alive = () => child.exitCode === null && child.signalCode === null;
    const p: AppProcess = {
      child,
      logFile,
      async stop() {
        running.delete(p);
        if (alive()) await stopProcessGroup(child.pid!);
        await exited;
      },
      async kill() {
        running.delete(p);
        if (alive()) process.kill(-child.pid!, 'SIGKILL');
        await exited;
      },
    };
    running.add(p);
    return p;
  };
  const waitForPoller = async (taskQueue: string, polling: 'workflows' | 'activities' = 'workflows') => {
    while (
      await requireWorker(client, { ...config, taskQueue }, polling).then(
        () => false,
        () => true,
      )
    )
      await new Promise((r) => setTimeout(r, 200));
  };
  const startWorker = async (name: string, extra: NodeJS.ProcessEnv = {}) => {
    const taskQueue = `bench-${name}-${randomUUID().slice(0, 8)}`;
    const worker = spawnApp(['control'], { VMHUB_TASK_QUEUE: taskQueue, ...extra }, name);
    await waitForPoller(taskQueue);
    return { worker, taskQueue };
  };
  const publishOn = async (w: { taskQueue: string }, file: string, image: string): Promise<PublishResult> =>
    (await client.workflow.execute('PublishImage', {
      args: [{ source: path.basename(file), image, version: '1.0.0', format: 'iso' }],
      taskQueue: w.taskQueue,
      workflowId: `publish:${image}:1.0.0`,
    })) as PublishResult;
  const historyEvents = async (workflowId: string) => (await client.workflow.getHandle(workflowId).fetchHistory()).events!.length;

  let figures: Figures;
  try {
    const small = path.join(config.repositoryRoots[0], 'bench-1.iso');
    writeImage(small, SIZE);
    const primary = container('east-primary');

    // Publish: PublishImage on one warm worker against uploadFile, same block size and concurrency.
    const publisher = await startWorker('publish');
    let published: PublishResult | undefined;
    let n = 0;
    const publishPairs = await pairs(
      'publish',
      async () => {
        const before = proc(publisher.worker.child.pid!).cpu;
        const run = await timed(() => publishOn(publisher, small, `bench-p${n++}`));
        published ??= run.value;
        return { seconds: run.seconds, cpu: proc(publisher.worker.child.pid!).cpu - before };
      },
      async () => {
        const blob = primary.getBlockBlobClient(`baseline/${randomUUID()}.bin`);
        const run = await baselineRun(() => blob.uploadFile(small, { blockSize: BLOCK_MIB * MiB, concurrency: CONCURRENCY }));
        await blob.delete();
        return run;
      },
    );
    await publisher.worker.stop();
    const tap = inspections(publisher.worker.logFile);
    const publish = {
      ...pairFigure(publishPairs, SIZE),
      sourceReadsPerByte: round(
        1 + tap.reduce((s, t) => s + t.readHere, 0) / tap.reduce((s, t) => s + t.fromTap + t.readHere, 0),
      ),
    };

    // Deploy: one SDDC's agent against downloadToFile, then three at once against three in parallel.
    const blob = primary.getBlockBlobClient(published!.location.blob);
    for (const sddc of SDDCS) {
      await catalog.sddcs.add({
        name: sddc,
        dataCenter: 'dc-east',
        taskQueue: agentTaskQueueOf(sddc),
        capacity: { cpus: 1, memoryMiB: 1, diskGiB: 1 },
      });
    }
    const datastore = (sddc: string) => path.join(dir, 'sddc', sddc);
    const agents = SDDCS.map((sddc) =>
      spawnApp(
        ['agent', sddc],
        { VMHUB_TRANSFER_CONCURRENCY: String(CONCURRENCY), VMHUB_DATASTORE: datastore(sddc) },
        `agent-${sddc}`,
      ),
    );
    const control = await startWorker('deploy');
    for (const sddc of SDDCS) await waitForPoller(agentTaskQueueOf(sddc), 'activities');
    const deployTo = async (sddcs: string[]) => {
      const before = agents.reduce((s, a) => s + proc(a.child.pid!).cpu, 0);
      const run = await timed(
        async () =>
          (await client.workflow.execute('DeployToSDDCs', {
            args: [{ image: published!.image, version: published!.version, sddcs }],
            taskQueue: control.taskQueue,
            workflowId: `deploy:${published!.image}:${published!.version}:${randomUUID()}`,
          })) as DeployResult,
      );
      const bad = run.value.results.find((r) => r.status !== 'deployed');
      if (bad) throw new Error(`bench deploy did not deploy: ${JSON.stringify(bad)}`);
      for (const sddc of sddcs) fs.rmSync(path.join(datastore(sddc), published!.image), { recursive: true, force: true });
      return { seconds: run.seconds, cpu: agents.reduce((s, a) => s + proc(a.child.pid!).cpu, 0) - before };
    };
    // downloadToFile takes no concurrency: it is one streamed GET of the whole blob into the file. Its
    // files are removed after the clock stops, as the agents' are.
    const download = (count: number) => async () => {
      const targets = SDDCS.slice(0, count).map((_, i) => path.join(dir, `baseline-download-${i}.bin`));
      const run = await baselineRun(() =>
        Promise.all(targets.map((t) => blob.downloadToFile(t, 0, undefined, { maxRetryRequests: 3 }))),
      );
      for (const t of targets) fs.rmSync(t);
      return run;
    };
    const deploy = pairFigure(await pairs('deploy', () => deployTo([SDDCS[0]]), download(1)), SIZE);
    const deployThree = pairFigure(await pairs('deploy to three', () => deployTo(SDDCS), download(SDDCS.length)), 3 * SIZE);
    const deltaDeploy = await deltaDeployFigure({
      client,
      taskQueue: control.taskQueue,
      published: published!,
      source: small,
      sddcs: [SDDCS[0], SDDCS[1]],
      datastore,
    });
    await Promise.all([...agents.map((a) => a.stop()), control.worker.stop()]);

    // Replication: the replicateImage activity of a publish that finds the version already available,
    // timed from its history, against a plain streamed copy of the blob from one Azurite to the other.
    const replicator = await startWorker('replicate', { VMHUB_TOPOLOGY: topologyFull });
    const replica = container('west-replica').getBlockBlobClient(published!.location.blob);
    let k = 0;
    const replication = pairFigure(
      await pairs(
        'replication',
        async () => {
          await replica.deleteIfExists();
          const workflowId = `publish:${published!.image}:1.0.0:replicate-${k++}`;
          await client.workflow.execute('PublishImage', {
            args: [{ source: path.basename(small), image: published!.image, version: '1.0.0', format: 'iso' }],
            taskQueue: replicator.taskQueue,
            workflowId,
          });
          // The worker also re-hashed the source to compare it: its CPU is no replication figure.
          return { seconds: await activitySeconds(workflowId, 'replicateImage'), cpu: 0 };
        },
        async () => {
          const copy = container('west-replica').getBlockBlobClient(`baseline/${randomUUID()}.bin`);
          const run = await baselineRun(async () => {
            const body = (await blob.download(0)).readableStreamBody!;
            await copy.uploadStream(body as never, BLOCK_MIB * MiB, CONCURRENCY);
          });
          await copy.delete();
          return run;
        },
      ),
      SIZE,
      false,
    );
    // Verification read: VerifyReplicas' hash of the replica (verifyReplicaContent, timed from its history)
    // against a plain streamed read of it hashed in the bench process.
    const verifyRead = pairFigure(
      await pairs(
        'verify read',
        async () => {
          const workflowId = `verify:${published!.image}:1.0.0:${k++}`;
          await client.workflow.execute('VerifyReplicas', {
            args: [{ image: published!.image, version: '1.0.0' }],
            taskQueue: replicator.taskQueue,
            workflowId,
          });
          return { seconds: await activitySeconds(workflowId, 'verifyReplicaContent'), cpu: 0 };
        },
        () =>
          baselineRun(async () => {
            const hash = createHash('sha256');
            for await (const chunk of (await replica.download(0)).readableStreamBody!) hash.update(chunk as Buffer);
            hash.digest('hex');
          }),
      ),
      SIZE,
      false,
    );
    await replicator.worker.stop();

    // Memory: a fresh worker each, idle once polling, then its peak while publishing 1× and 4× the size.
    const measureMemory = async (file: string, image: string) => {
      const w = await startWorker(`memory-${image}`);
      await new Promise((r) => setTimeout(r, 2000));
      const idle = proc(w.worker.child.pid!).rssMiB;
      const result = await publishOn(w, file, image);
      const peak = proc(w.worker.child.pid!).peakMiB;
      const events = await historyEvents(`publish:${image}:1.0.0`);
      await w.worker.stop();
      return { idle, peak, events, result };
    };
    const one = await measureMemory(small, 'bench-memory-1');
    const large = path.join(config.repositoryRoots[0], 'bench-4.iso');
    writeImage(large, 4 * SIZE);
    const four = await measureMemory(large, 'bench-memory-4');
    fs.rmSync(large);
    const memory = {
      idleMiB: { small: round(one.idle, 0), large: round(four.idle, 0) },
      peakMiB: { small: round(one.peak, 0), large: round(four.peak, 0) },
      largeOverSmall: round(four.peak / one.peak),
    };

    // Resume: SIGKILL the worker half-way through a publish, finish it on a new worker, count block bytes sent.
    const proxy = await startCountingProxy(east);
    let resume: Figures['resume'];
    try {
      const via = { AZURITE_DC_EAST_PORT: String(proxy.port) };
      const first = await startWorker('resume-1', via);
      let ended = false;
      const run = timed(() => publishOn(first, small, 'bench-resume')).finally(() => (ended = true));
      run.catch(() => undefined);
      while (proxy.blockBytes < SIZE / 2 && !ended) await new Promise((r) => setTimeout(r, 20));
      if (ended) throw new Error(`the publish to kill ended before half of it was staged: ${String(await run.catch((e) => e))}`);
      await first.worker.kill();
      const sentAtKill = proxy.blockBytes;
      const second = spawnApp(['control'], { VMHUB_TASK_QUEUE: first.taskQueue, ...via }, 'resume-2');
      const { seconds } = await run;
      await second.stop();
      const plain = stats(publishPairs.map((p) => p.vmhubSeconds)).median;
      resume = {
        sentAtKillMiB: round(sentAtKill / MiB, 0),
        bytesResentMiB: round((proxy.blockBytes - SIZE) / MiB, 1),
        inFlightBoundMiB: CONCURRENCY * BLOCK_MIB,
        seconds: round(seconds, 1),
        extraSeconds: round(seconds - plain, 1),
        heartbeatTimeoutSeconds: 15,
      };
    } finally {
      await proxy.close();
    }

    // History: the real 1× publish above, and the real workflow over a simulated 1 TiB plan.
    const plan = planBlocks(1024 * GiB, BLOCK_MIB * MiB);
    const { activities } = accountingActivities(plan);
    const connection = await connectWorker(config.temporal);
    const taskQueue = `bench-history-${randomUUID()}`;
    const worker = await Worker.create({ connection, taskQueue, ...workflowSource(), activities });
    const transfers = await Worker.create({ connection, taskQueue: transferTaskQueueOf(taskQueue), activities });
    const id = `publish:simulated:1.0.0:${randomUUID()}`;
    await transfers.runUntil(
      worker.runUntil(
        client.workflow.execute('PublishImage', {
          args: [{ source: 'x.iso', image: 'simulated', version: '1.0.0' }],
          taskQueue,
          workflowId: id,
        }),
      ),
    );
    await connection.close();
    const history = { small: one.events, simulatedTiB: await historyEvents(id), simulatedBlocks: plan.blockCount };
    figures = { publish, deploy, deployThree, deltaDeploy, replication, verifyRead, memory, resume, history };
  } finally {
    for (const w of [...running]) await w.stop();
    await catalog.close();
    await client.connection.close();
    await stopServices(config);
    fs.rmSync(dir, { recursive: true, force: true });
  }

  const results: Results = {
    startedAt: startedAt.toISOString(),
    seconds: round((Date.now() - startedAt.getTime()) / 1000, 0),
    command: `BENCH_GIB=${SIZE / GiB} BENCH_REPEATS=${REPEATS} npm run bench`,
    machine: {
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model,
      memoryGiB: round(os.totalmem() / GiB, 1),
      os: `${os.type()} ${os.release()}`,
      loadAverageBefore: loadBefore.map((l) => round(l)),
      loadAverageAfter: os.loadavg().map((l) => round(l)),
    },
    versions: versions(),
    settings: {
      imageGiB: SIZE / GiB,
      blockMiB: BLOCK_MIB,
      rangeFanOut: FAN_OUT,
      transferConcurrency: PER_ACTIVITY,
      baselineConcurrency: CONCURRENCY,
      deployBaseline: 'downloadToFile: one streamed GET per file, not synced',
      agentConcurrency: CONCURRENCY,
      maxInflightMiB: config.maxInflightBytes / MiB,
      repeats: REPEATS,
      worker: `compiled (tsc) with the prebuilt workflow bundle; node ${WORKER_NODE_FLAGS.join(' ')}`,
    },
    figures,
    targets: targets(figures),
  };
  fs.mkdirSync(path.join(PROJECT_ROOT, 'bench'), { recursive: true });
  fs.writeFileSync(path.join(PROJECT_ROOT, 'bench', 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
  const table = markdown(results);
  fs.mkdirSync(path.join(PROJECT_ROOT, 'test-output'), { recursive: true });
  fs.writeFileSync(path.join(PROJECT_ROOT, 'test-output', 'bench.md'), table);
  process.stdout.write(table);
  if (results.targets.some((t) => !t.met)) process.exitCode = 1;
}

interface DeltaDeployFigure {
  blocks: number;
  changedBlocks: number;
  delta: { fetchedMiB: number; reusedMiB: number; seconds: number };
  full: { fetchedMiB: number; seconds: number };
}

/**
 * Delta deploy: the published image again as 1.0.1 with 1 % of its blocks changed in place; an SDDC
 * holding 1.0.0 deploys it (copying the unchanged blocks from its disk), and an SDDC without 1.0.0
 * deploys it in full. Leaves both SDDCs' datastores without the image.
 */
async function deltaDeployFigure(ctx: {
  client: Client;
  taskQueue: string;
  published: PublishResult;
  source: string;
  sddcs: [string, string];
  datastore: (sddc: string) => string;
}): Promise<DeltaDeployFigure> {
  const { client, taskQueue, published } = ctx;
  const [holder, fresh] = ctx.sddcs;
  const block = BLOCK_MIB * MiB;
  const blocks = Math.ceil(published.sizeBytes / block);
  const changed = Math.ceil(blocks / 100);
  const next = path.join(path.dirname(ctx.source), 'bench-delta-1.0.1.iso');
  fs.copyFileSync(ctx.source, next);
  const fd = fs.openSync(next, 'r+');
  for (let i = 1; i <= changed; i++)
    fs.writeSync(fd, randomBytes(4096), 0, 4096, Math.floor((i * blocks) / (changed + 1)) * block);
  fs.closeSync(fd);
  await client.workflow.execute('PublishImage', {
    args: [{ source: path.basename(next), image: published.image, version: '1.0.1', format: 'iso' }],
    taskQueue,
    workflowId: `publish:${published.image}:1.0.1:${randomUUID()}`,
  });
  fs.rmSync(next);
  const deployOne = async (version: string, sddc: string) => {
    const run = await timed(
      async () =>
        (await client.workflow.execute('DeployToSDDCs', {
          args: [{ image: published.image, version, sddcs: [sddc] }],
          taskQueue,
          workflowId: `deploy:${published.image}:${version}:${randomUUID()}`,
        })) as DeployResult,
    );
    const [row] = run.value.results;
    if (row.status !== 'deployed') throw new Error(`bench delta deploy did not deploy: ${JSON.stringify(row)}`);
    return {
      fetchedMiB: round((row.bytesFetched ?? 0) / MiB, 1),
      reusedMiB: round((row.bytesReusedLocally ?? 0) / MiB, 1),
      seconds: round(run.seconds),
    };
  };
  await deployOne('1.0.0', holder);
  const delta = await deployOne('1.0.1', holder);
  const { fetchedMiB, seconds } = await deployOne('1.0.1', fresh);
  for (const sddc of ctx.sddcs) fs.rmSync(path.join(ctx.datastore(sddc), published.image), { recursive: true, force: true });
  process.stderr.write(
    `bench: delta deploy: ${delta.fetchedMiB} MiB fetched in ${delta.seconds} s; full deploy ${fetchedMiB} MiB in ${seconds} s\n`,
  );
  return { blocks, changedBlocks: changed, delta, full: { fetchedMiB, seconds } };
}

function versions(): Record<string, string> {
  const pkg = (name: string) =>
    (JSON.parse(fs.readFileSync(path.join(PROJECT_ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string })
      .version;
  return {
    node: process.version,
    vmhub: (JSON.parse(fs.readFileSync(path.join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string }).version,
    commit: gitCommit(),
    '@azure/storage-blob': pkg('@azure/storage-blob'),
    '@temporalio/worker': pkg('@temporalio/worker'),
    azurite: pkg('azurite'),
  };
}

function gitCommit(): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: PROJECT_ROOT, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain'], { cwd: PROJECT_ROOT, encoding: 'utf8' }).trim() !== '';
    return dirty ? `${head} with local changes` : head;
  } catch {
    return 'unknown';
  }
}

function targets(f: Figures): Array<{ target: string; value: string; met: boolean }> {
  const ratio = (name: 'publish' | 'deploy' | 'deployThree') => f[name].ratio.median;
  return [
    { target: 'publish ≥ 0.9 × uploadFile', value: ratio('publish').toFixed(2), met: ratio('publish') >= 0.9 },
    { target: 'deploy ≥ 0.9 × downloadToFile', value: ratio('deploy').toFixed(2), met: ratio('deploy') >= 0.9 },
    {
      target: 'three-SDDC deploy ≥ 0.8 × three parallel downloadToFile',
      value: ratio('deployThree').toFixed(2),
      met: ratio('deployThree') >= 0.8,
    },
    {
      target: 'worker peak RSS ≤ 300 MiB at 4×',
      value: `${f.memory.peakMiB.large} MiB`,
      met: f.memory.peakMiB.large <= 300,
    },
    {
      target: 'peak RSS at 4× within 10 % of 1×',
      value: `${f.memory.largeOverSmall.toFixed(2)}×`,
      met: f.memory.largeOverSmall <= 1.1,
    },
    {
      target: '≤ 2,000 history events, 1 TiB publish',
      value: String(f.history.simulatedTiB),
      met: f.history.simulatedTiB <= 2000,
    },
    {
      target: 'a crash re-sends at most the blocks in flight',
      value: `${f.resume.bytesResentMiB} MiB re-sent (≤ ${f.resume.inFlightBoundMiB} MiB in flight)`,
      met: f.resume.bytesResentMiB <= f.resume.inFlightBoundMiB,
    },
    {
      target: 'delta deploy, 1 % of blocks changed, fetches ≤ 5 % of the bytes',
      value: `${((100 * f.deltaDeploy.delta.fetchedMiB) / f.deltaDeploy.full.fetchedMiB).toFixed(1)} %`,
      met: f.deltaDeploy.delta.fetchedMiB <= 0.05 * f.deltaDeploy.full.fetchedMiB,
    },
  ];
}

interface Results {
  startedAt: string;
  seconds: number;
  command: string;
  machine: {
    cpus: number;
    cpuModel?: string;
    memoryGiB: number;
    os: string;
    /** Other work on the machine makes every figure noisier: the 1, 5 and 15 minute load averages. */
    loadAverageBefore: number[];
    loadAverageAfter: number[];
  };
  versions: Record<string, string>;
  settings: {
    imageGiB: number;
    blockMiB: number;
    rangeFanOut: number;
    transferConcurrency: number;
    /** Uploads (uploadFile, the replication copy's uploadStream); downloadToFile takes none. */
    baselineConcurrency: number;
    deployBaseline: string;
    agentConcurrency: number;
    maxInflightMiB: number;
    repeats: number;
    worker: string;
  };
  figures: Figures;
  targets: ReturnType<typeof targets>;
}

function markdown(r: Results): string {
  const f = r.figures;
  const size = `${r.settings.imageGiB} GiB`;
  const pair = (name: 'publish' | 'deploy' | 'deployThree' | 'replication' | 'verifyRead', what: string, baseline: string) => {
    const p = f[name];
    const cpu = p.cpuSecondsPerGiB ? ` (${p.cpuSecondsPerGiB.vmhub} / ${p.cpuSecondsPerGiB.baseline} CPU s/GiB)` : '';
    return `| ${what} | ${p.vmhubMiBps} MiB/s | ${baseline} ${p.baselineMiBps} MiB/s${cpu} | **${p.ratio.median.toFixed(2)}** (${p.ratio.min.toFixed(2)}–${p.ratio.max.toFixed(2)}) |`;
  };
  const lines = [
    `\`${r.command}\` — ${r.machine.cpus} × ${r.machine.cpuModel}, ${r.machine.memoryGiB} GiB, load ${r.machine.loadAverageBefore[0]} before / ${r.machine.loadAverageAfter[0]} after; node ${r.versions.node.slice(1)}, @azure/storage-blob ${r.versions['@azure/storage-blob']}, @temporalio/worker ${r.versions['@temporalio/worker']}, Azurite ${r.versions.azurite}`,
    '',
    '| figure | vmhub | plain SDK (CPU vmhub / SDK) | ratio median (min–max) |',
    '|---|---|---|---|',
    pair('publish', `publish ${size}`, 'uploadFile'),
    pair('deploy', `deploy ${size} to one SDDC`, 'downloadToFile'),
    pair('deployThree', `deploy ${size} to three SDDCs at once`, '3 × downloadToFile'),
    pair('replication', `replicate ${size} east → west`, 'streamed copy'),
    pair('verifyRead', `verify (hash) a ${size} replica`, 'streamed read + SHA-256'),
    '',
    '| figure | value |',
    '|---|---|',
    `| source bytes read per image byte (publish) | ${f.publish.sourceReadsPerByte} |`,
    `| worker RSS idle / peak, ${size} publish | ${f.memory.idleMiB.small} / ${f.memory.peakMiB.small} MiB |`,
    `| worker RSS idle / peak, 4 × ${size} publish | ${f.memory.idleMiB.large} / ${f.memory.peakMiB.large} MiB |`,
    `| history events: ${size} publish / simulated 1 TiB (${plural(f.history.simulatedBlocks, 'block')}) | ${f.history.small} / ${f.history.simulatedTiB} |`,
    `| delta deploy ${size}, ${f.deltaDeploy.changedBlocks} of ${plural(f.deltaDeploy.blocks, 'block')} changed: fetched / time, against a full deploy | ${f.deltaDeploy.delta.fetchedMiB} MiB in ${f.deltaDeploy.delta.seconds} s / ${f.deltaDeploy.full.fetchedMiB} MiB in ${f.deltaDeploy.full.seconds} s |`,
    `| worker SIGKILLed at ${f.resume.sentAtKillMiB} MiB staged: re-sent / extra seconds | ${f.resume.bytesResentMiB} MiB / ${f.resume.extraSeconds} s (heartbeat timeout ${f.resume.heartbeatTimeoutSeconds} s) |`,
    '',
    '| target | value | |',
    '|---|---|---|',
    ...r.targets.map((t) => `| ${t.target} | ${t.value} | ${t.met ? 'met' : '**missed**'} |`),
    '',
  ];
  return lines.join('\n');
}

main().catch((err: Error) => {
  process.stderr.write(`bench failed: ${err.stack ?? err.message}\n`);
  process.exit(2);
});
