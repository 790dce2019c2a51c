import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs';
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
import { freeLoopbackPort } from '../src/engine/free-port';
import { GOVMOMI_VERSION } from '../src/dev-services/tools';
import { agentVcenterEnv } from '../src/dev-services/vcsim';
import { WORKER_NODE_FLAGS } from '../src/dev-services/worker-process';
import { planBlocks } from '../src/shared/block-plan';
import { TopologyBlockStores } from '../src/storage/backends';
import { blobServiceClient } from '../src/storage/azure/clients';
import { connectClient, connectWorker } from '../src/temporal/connection';
import { findLocation, loadTopology } from '../src/topology/topology';
import { workflowSource } from '../src/temporal/worker';
import { startCountingProxy } from '../test/harness/counting-proxy';
import { accountingActivities } from '../test/harness/simulated-publish';
import { buildBundle } from './build-bundle';
import { agentTaskQueueOf, transferTaskQueueOf } from '../src/shared/task-queues';
import { contentLibraryFigure, libraryTarget } from './bench/content-library';
import { changedCopy, incrementalPublishFigure, incrementalReplicationFigure, NEXT_VERSION } from './bench/incremental';
import {
  BLOCK_MIB,
  CONCURRENCY,
  FAN_OUT,
  GiB,
  MiB,
  PER_ACTIVITY,
  REPEATS,
  SIZE,
  baselineRun,
  fsyncedDownload,
  pairFigure,
  pairs,
  plainUpload,
  proc,
  round,
  settleDisk,
  stats,
  streamedCopy,
  timed,
  writeImage,
} from './bench/measure';
import { telemetryFigure } from './bench/telemetry';
import { markdown, targets, type DeltaDeployFigure, type Figures, type Results } from './bench/report';

/**
 * `npm run bench`: the performance checks on embedded services started for the run. Each
 * throughput figure is a ratio against what a user would run instead on the same services: the plain
 * @azure/storage-blob call doing the same transfer (uploads with the same block size and concurrency;
 * downloadToFile is one streamed GET, it takes no concurrency, and is followed by an fsync of its file),
 * or, for a content library, downloadToFile then `govc library.import` (scripts/bench/content-library.ts);
 * incremental publish and replication are in scripts/bench/incremental.ts. Every pair runs
 * BENCH_REPEATS times (default 5, at least 3), alternating which of the two goes first, each run once
 * the disk has settled (settleDisk, outside the clock), and the ratios are reported as median, min and max. The workers are what production runs: the compiled sources with the prebuilt workflow bundle, built here.
 *
 * BENCH_GIB sets the image size (default 1; 0.25 for a quick run); memory is also measured at 4×.
 * Results go to bench/results.json and the table to test-output/bench.md.
 */
const SDDCS = ['bench-a', 'bench-b', 'bench-c'];

/** A vmhub worker process as production runs it: compiled code, the prebuilt workflow bundle. */
interface AppProcess {
  child: ChildProcess;
  logFile: string;
  stop(): Promise<void>;
  kill(): Promise<void>;
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

  const ports = await Promise.all(Array.from({ length: 6 }, () => freeLoopbackPort()));
  const [temporal, ui, catalogPort, east, west, vcsimPort] = ports;
  // Two topologies: publish and deploy measured on the primary alone, as the plain SDK writes once;
  // replication measured between the two data centers. Their one SDDC is the content-library figure's,
  // so that the services start its vcsim.
  const full = JSON.parse(fs.readFileSync(path.join(PROJECT_ROOT, 'config', 'topology.json'), 'utf8'));
  const library = libraryTarget(`https://127.0.0.1:${vcsimPort}/`);
  full.sddcs = [library];
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
  const publishOn = async (w: { taskQueue: string }, file: string, image: string, version = '1.0.0'): Promise<PublishResult> =>
    (await client.workflow.execute('PublishImage', {
      args: [{ source: path.basename(file), image, version, format: 'iso' }],
      taskQueue: w.taskQueue,
      workflowId: `publish:${image}:${version}`,
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
    /** One publish of the small image on a worker: its seconds, and the worker's CPU over it. */
    const publishRun = async (w: Awaited<ReturnType<typeof startWorker>>, image: string) => {
      const before = proc(w.worker.child.pid!).cpu;
      const run = await timed(() => publishOn(w, small, image));
      return { value: run.value, seconds: run.seconds, cpu: proc(w.worker.child.pid!).cpu - before };
    };
    const publishPairs = await pairs(
      'publish',
      async () => {
        const run = await publishRun(publisher, `bench-p${n++}`);
        published ??= run.value;
        return run;
      },
      () => plainUpload(primary, small),
    );
    // Metrics and traces: the same publish on a worker with both on, against this one with both off.
    const telemetry = await telemetryFigure(
      {
        startWorker: async (name, extra) => {
          const w = await startWorker(name, extra);
          return { publish: (image) => publishRun(w, image), stop: () => w.worker.stop() };
        },
        plain: (image) => publishRun(publisher, image),
      },
      SIZE,
    );
    await publisher.worker.stop();
    const tap = inspections(publisher.worker.logFile);
    const publish = {
      ...pairFigure(publishPairs, SIZE),
      sourceReadsPerByte: round(
        1 + tap.reduce((s, t) => s + t.readHere, 0) / tap.reduce((s, t) => s + t.fromTap + t.readHere, 0),
      ),
    };

    // Incremental publish: the image's next version, 1 % of its blocks changed, on a worker of its own
    // (the figure above reads its worker's log), one image of the publish figure a run.
    const next = path.join(config.repositoryRoots[0], 'bench-1-next.iso');
    const changed = changedCopy(small, next);
    const incrementalPublisher = await startWorker('incremental-publish');
    const incrementalPublish = await incrementalPublishFigure({
      publish: async (file, image, version) => {
        const before = proc(incrementalPublisher.worker.child.pid!).cpu;
        const run = await timed(() => publishOn(incrementalPublisher, file, image, version));
        return { ...run, cpu: proc(incrementalPublisher.worker.child.pid!).cpu - before };
      },
      images: Array.from({ length: n }, (_, i) => `bench-p${i}`),
      next,
      primary,
    });
    await incrementalPublisher.worker.stop();

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
    // What a user scripts instead: downloadToFile into each file, then an fsync of it, as the agents sync
    // what they write. The files are removed after the clock stops, as the agents' are.
    const download = (count: number) => async () => {
      const targets = SDDCS.slice(0, count).map((_, i) => path.join(dir, `baseline-download-${i}.bin`));
      const run = await baselineRun(() => Promise.all(targets.map((t) => fsyncedDownload(blob, t))));
      for (const t of targets) fs.rmSync(t);
      return run;
    };
    const deploy = pairFigure(await pairs('deploy', () => deployTo([SDDCS[0]]), download(1)), SIZE);
    const deployThree = pairFigure(await pairs('deploy to three', () => deployTo(SDDCS), download(SDDCS.length)), 3 * SIZE);
    const deltaDeploy = await deltaDeployFigure({
      client,
      taskQueue: control.taskQueue,
      published: published!,
      changed,
      sddcs: [SDDCS[0], SDDCS[1]],
      datastore,
    });
    await Promise.all(agents.map((a) => a.stop()));
    const contentLibrary = await contentLibraryFigure(
      {
        client,
        catalog,
        taskQueue: control.taskQueue,
        repository: config.repositoryRoots[0],
        dir,
        primary,
        sddc: library,
        startAgent: async (sddcDatastore) => {
          const agent = spawnApp(
            ['agent', library.name],
            {
              VMHUB_TRANSFER_CONCURRENCY: String(CONCURRENCY),
              VMHUB_DATASTORE: sddcDatastore,
              ...agentVcenterEnv(config, library.name),
            },
            `agent-${library.name}`,
          );
          await waitForPoller(agentTaskQueueOf(library.name), 'activities');
          return { pid: agent.child.pid!, stop: () => agent.stop() };
        },
      },
      SIZE,
    );
    await control.worker.stop();

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
        () => streamedCopy(blob, container('west-replica')),
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
    // Incremental replication: the next version to the replica location, which holds the first (above).
    const incrementalReplication = await incrementalReplicationFigure({
      client,
      catalog,
      taskQueue: replicator.taskQueue,
      image: published!.image,
      next,
      source: primary.getBlockBlobClient((await catalog.versions.get(published!.image, NEXT_VERSION))!.location.blob),
      replica: container('west-replica'),
      replicaLocation: 'west-replica',
      activitySeconds,
    });
    await replicator.worker.stop();
    fs.rmSync(next);

    // Memory: a fresh worker each, idle once polling, then its peak while publishing 1× and 4× the size.
    // A peak is one moment of one process, so each size takes the median of three workers.
    const measureMemory = async (file: string, image: string) => {
      const w = await startWorker(`memory-${image}`);
      await new Promise((r) => setTimeout(r, 2000));
      const idle = proc(w.worker.child.pid!).rssMiB;
      await publishOn(w, file, image);
      const peak = proc(w.worker.child.pid!).peakMiB;
      const events = await historyEvents(`publish:${image}:1.0.0`);
      await w.worker.stop();
      return { idle, peak, events };
    };
    const memoryOf = async (file: string, image: string) => {
      const runs = [];
      for (let r = 0; r < 3; r++) runs.push(await measureMemory(file, `${image}-${r}`));
      return { idle: stats(runs.map((m) => m.idle)).median, peak: stats(runs.map((m) => m.peak)).median, events: runs[0].events };
    };
    const one = await memoryOf(small, 'bench-memory-1');
    const large = path.join(config.repositoryRoots[0], 'bench-4.iso');
    writeImage(large, 4 * SIZE);
    const four = await memoryOf(large, 'bench-memory-4');
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
    figures = {
      publish,
      telemetry,
      incrementalPublish,
      deploy,
      deployThree,
      deltaDeploy,
      contentLibrary,
      replication,
      incrementalReplication,
      verifyRead,
      memory,
      resume,
      history,
    };
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
      deployBaseline: 'downloadToFile: one streamed GET per file, then an fsync of the file, both timed',
      libraryBaseline: `downloadToFile, then govc library.import (govmomi ${GOVMOMI_VERSION}) into another library of the same vcsim`,
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

/**
 * Delta deploy: the published image's next version (NEXT_VERSION, 1 % of its blocks changed in place,
 * published by the incremental publish figure); an SDDC holding 1.0.0 deploys it (copying the unchanged
 * blocks from its disk), and an SDDC without 1.0.0 deploys it in full. Leaves both SDDCs' datastores
 * without the image.
 */
async function deltaDeployFigure(ctx: {
  client: Client;
  taskQueue: string;
  published: PublishResult;
  changed: { blocks: number; changedBlocks: number };
  sddcs: [string, string];
  datastore: (sddc: string) => string;
}): Promise<DeltaDeployFigure> {
  const { client, taskQueue, published } = ctx;
  const [holder, fresh] = ctx.sddcs;
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
      seconds: run.seconds,
    };
  };
  // Each run of the next version is removed after it, so the next run finds the SDDC as this one did: the
  // holder with the first version only, the other with neither.
  const runOnce = async (sddc: string) => {
    settleDisk();
    const run = await deployOne(NEXT_VERSION, sddc);
    fs.rmSync(path.join(ctx.datastore(sddc), published.image, NEXT_VERSION), { recursive: true, force: true });
    return run;
  };
  await deployOne('1.0.0', holder);
  const runs: DeltaDeployFigure['runs'] = [];
  for (let r = 0; r < REPEATS; r++) {
    // Alternating which goes first, as every pair does.
    const first = r % 2 === 0 ? await runOnce(holder) : await runOnce(fresh);
    const second = r % 2 === 0 ? await runOnce(fresh) : await runOnce(holder);
    const [delta, full] = r % 2 === 0 ? [first, second] : [second, first];
    runs.push({ delta, full, ratio: round(delta.seconds / full.seconds) });
    process.stderr.write(
      `bench: delta deploy ${r + 1}/${REPEATS}: ${delta.fetchedMiB} MiB fetched in ${delta.seconds.toFixed(2)} s; ` +
        `full deploy ${full.fetchedMiB} MiB in ${full.seconds.toFixed(2)} s\n`,
    );
  }
  for (const sddc of ctx.sddcs) fs.rmSync(path.join(ctx.datastore(sddc), published.image), { recursive: true, force: true });
  const median = (values: number[]) => round(stats(values).median);
  return {
    ...ctx.changed,
    ratio: stats(runs.map((r) => r.ratio)),
    delta: {
      fetchedMiB: median(runs.map((r) => r.delta.fetchedMiB)),
      reusedMiB: median(runs.map((r) => r.delta.reusedMiB)),
      seconds: median(runs.map((r) => r.delta.seconds)),
    },
    full: { fetchedMiB: median(runs.map((r) => r.full.fetchedMiB)), seconds: median(runs.map((r) => r.full.seconds)) },
    runs,
  };
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

main().catch((err: Error & { code?: string; statusCode?: number; request?: { method?: string; url?: string } }) => {
  // A storage error's stack names no request: say which one failed, and how.
  const request = err.request && `${err.request.method} ${err.request.url?.replace(/\?.*/, '')}: `;
  const status = err.statusCode === undefined ? '' : ` (${err.statusCode} ${err.code ?? ''})`;
  process.stderr.write(`bench failed: ${request ?? ''}${err.stack ?? err.message}${status}\n`);
  process.exit(2);
});
