import { randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Worker } from '@temporalio/worker';
import { Catalog } from '../src/catalog/catalog';
import { loadConfig, PROJECT_ROOT, type Config } from '../src/config';
import type { DeployResult } from '../src/deploy/input';
import { installLogging } from '../src/logging';
import { requireWorker } from '../src/operations';
import type { PublishResult } from '../src/publish/input';
import { startServices, stopServices } from '../src/services/embedded';
import { spawnWorker, type WorkerProcess } from '../src/services/worker-process';
import { planBlocks } from '../src/storage/block-plan';
import { StorageClients } from '../src/storage/clients';
import { connectClient, connectWorker } from '../src/temporal';
import { loadTopology } from '../src/topology/topology';
import { formatBytes } from '../src/units';
import { workflowSource } from '../src/worker';
import { accountingActivities } from '../test/harness/simulated-publish';

/**
 * The performance checks of SPEC §8, each a ratio of two runs in this one process tree, on embedded
 * services started for the run: vmhub against a plain @azure/storage-blob call with the same block size
 * and concurrency on the same Azurite. BENCH_GIB sets the main image size (default 1); the memory check
 * publishes 4× that as well.
 */
const GiB = 2 ** 30;
const MiB = 2 ** 20;
const BLOCK_MIB = 8;
const FAN_OUT = 2;
const PER_ACTIVITY = 4;
const CONCURRENCY = FAN_OUT * PER_ACTIVITY;
const SIZE = Number(process.env.BENCH_GIB ?? 1) * GiB;

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

function peakRssMiB(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; seconds: number }> {
  const t = process.hrtime.bigint();
  const value = await fn();
  return { value, seconds: Number(process.hrtime.bigint() - t) / 1e9 };
}

const lines: string[] = [];
let failed = false;
function report(name: string, detail: string, ratio?: number, target?: (r: number) => boolean, targetText?: string): void {
  const verdict = ratio === undefined || !target ? '' : target(ratio) ? `  PASS (${targetText})` : `  FAIL (${targetText})`;
  if (verdict.includes('FAIL')) failed = true;
  const line = `${name.padEnd(22)} ${detail}${ratio === undefined ? '' : `  ratio ${ratio.toFixed(2)}`}${verdict}`;
  lines.push(line);
  process.stdout.write(`${line}\n`);
}

async function main(): Promise<void> {
  installLogging('WARN');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmhub-bench-'));
  const [temporal, ui, catalogPort, east] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
  const topologyFile = path.join(dir, 'topology.json');
  // One data center: publish is measured without replication, as the baseline uploads once.
  const full = JSON.parse(fs.readFileSync(path.join(PROJECT_ROOT, 'config', 'topology.json'), 'utf8'));
  full.storage = full.storage.filter((s: { role: string }) => s.role === 'primary');
  full.dataCenters = full.dataCenters
    .filter((d: { id: string }) => d.id === 'dc-east')
    .map((d: object) => ({ ...d, nearest: [] }));
  full.sddcs = [];
  fs.writeFileSync(topologyFile, JSON.stringify(full));
  const env = {
    VMHUB_DATA_DIR: dir,
    TEMPORAL_ADDRESS: `127.0.0.1:${temporal}`,
    TEMPORAL_UI_PORT: String(ui),
    MONGODB_URI: `mongodb://127.0.0.1:${catalogPort}/vmhub`,
    AZURITE_DC_EAST_PORT: String(east),
    VMHUB_TOPOLOGY: topologyFile,
    VMHUB_REPOSITORY_ROOTS: path.join(dir, 'repository'),
    VMHUB_BLOCK_SIZE_MIB: String(BLOCK_MIB),
    VMHUB_TRANSFER_CONCURRENCY: String(PER_ACTIVITY),
    VMHUB_RANGE_FAN_OUT: String(FAN_OUT),
    VMHUB_LOG_LEVEL: 'WARN',
  };
  Object.assign(process.env, env);
  const config: Config = loadConfig();
  fs.mkdirSync(config.repositoryRoots[0], { recursive: true });
  process.stderr.write(`bench: services in ${dir}; images of ${formatBytes(SIZE)} and ${formatBytes(4 * SIZE)}\n`);
  await startServices(config);
  const storage = new StorageClients(loadTopology(config.topologyPath));
  await storage.ensureContainers();
  const client = await connectClient(config.temporal);
  const catalog = await Catalog.connect(config.mongodbUri);
  const workers: WorkerProcess[] = [];
  try {
    const small = path.join(config.repositoryRoots[0], 'bench-1.iso');
    const large = path.join(config.repositoryRoots[0], 'bench-4.iso');
    writeImage(small, SIZE);

    // Publish throughput: plain uploadFile against the PublishImage workflow, same block size and concurrency.
    const container = storage.container('east-primary');
    const baseline = await timed(() =>
      container
        .getBlockBlobClient(`baseline/${randomUUID()}.bin`)
        .uploadFile(small, { blockSize: BLOCK_MIB * MiB, concurrency: CONCURRENCY }),
    );
    const waitForPoller = async (taskQueue: string, polling: 'workflows' | 'activities' = 'workflows') => {
      while (
        await requireWorker(client, { ...config, taskQueue }, polling).then(
          () => false,
          () => true,
        )
      )
        await new Promise((r) => setTimeout(r, 200));
    };
    const publishOn = async (file: string, image: string) => {
      const worker = spawnWorker(['control'], env, path.join(dir, 'logs', `worker-${image}.log`));
      workers.push(worker);
      await waitForPoller(config.taskQueue);
      const run = await timed(
        async () =>
          (await client.workflow.execute('PublishImage', {
            args: [{ source: path.basename(file), image, version: '1.0.0', format: 'iso' }],
            taskQueue: config.taskQueue,
            workflowId: `publish:${image}:1.0.0`,
          })) as PublishResult,
      );
      const rss = peakRssMiB(worker.child.pid!);
      const events = (await client.workflow.getHandle(`publish:${image}:1.0.0`).fetchHistory()).events!.length;
      await worker.stop();
      return { ...run, rss, events };
    };
    const published = await publishOn(small, 'bench-small');
    const mbps = (s: number) => `${(SIZE / MiB / s).toFixed(0)} MiB/s`;
    report(
      'publish throughput',
      `vmhub ${mbps(published.seconds)}, uploadFile ${mbps(baseline.seconds)}`,
      baseline.seconds / published.seconds,
      (r) => r >= 0.9,
      '≥ 0.90',
    );

    // Memory: peak RSS of a fresh worker process publishing 4× the size.
    writeImage(large, 4 * SIZE);
    const big = await publishOn(large, 'bench-large');
    fs.rmSync(large);
    report(
      'worker memory',
      `peak RSS ${formatBytes(SIZE)}: ${published.rss.toFixed(0)} MiB, ${formatBytes(4 * SIZE)}: ${big.rss.toFixed(0)} MiB`,
      big.rss / published.rss,
      (r) => r <= 1.1,
      '≤ 1.10',
    );

    // Deploy throughput: plain downloadToFile against an agent's verified download of the same blob.
    const blob = container.getBlockBlobClient(published.value.location.blob);
    const target = path.join(dir, 'baseline-download.bin');
    const download = await timed(() =>
      blob.downloadToFile(target, 0, undefined, { maxRetryRequests: 3, concurrency: CONCURRENCY } as never),
    );
    fs.rmSync(target);
    const sddc = 'bench-sddc';
    await catalog.addSddc({
      name: sddc,
      dataCenter: 'dc-east',
      taskQueue: `sddc-${sddc}`,
      capacity: { cpus: 1, memoryMiB: 1, diskGiB: 1 },
    });
    const agent = spawnWorker(
      ['agent', sddc],
      { ...env, VMHUB_TRANSFER_CONCURRENCY: String(CONCURRENCY), VMHUB_DATASTORE: path.join(dir, 'sddc') },
      path.join(dir, 'logs', 'agent.log'),
    );
    const control = spawnWorker(['control'], env, path.join(dir, 'logs', 'worker-deploy.log'));
    workers.push(agent, control);
    await waitForPoller(`sddc-${sddc}`, 'activities');
    await waitForPoller(config.taskQueue);
    const deploy = await timed(
      async () =>
        (await client.workflow.execute('DeployToSDDCs', {
          args: [{ image: 'bench-small', version: '1.0.0', sddcs: [sddc] }],
          taskQueue: config.taskQueue,
          workflowId: `deploy:bench-small:1.0.0:${randomUUID()}`,
        })) as DeployResult,
    );
    await Promise.all([agent.stop(), control.stop()]);
    if (deploy.value.results[0]?.status !== 'deployed')
      throw new Error(`bench deploy did not deploy: ${JSON.stringify(deploy.value.results[0])}`);
    report(
      'deploy throughput',
      `vmhub ${mbps(deploy.seconds)}, downloadToFile ${mbps(download.seconds)}`,
      download.seconds / deploy.seconds,
      (r) => r >= 0.9,
      '≥ 0.90',
    );

    // History size: the real 1 GiB publish above, and the real workflow over a simulated 1 TiB plan.
    const plan = planBlocks(1024 * GiB, BLOCK_MIB * MiB);
    const { activities } = accountingActivities(plan);
    const connection = await connectWorker(config.temporal);
    const taskQueue = `bench-history-${randomUUID()}`;
    const worker = await Worker.create({ connection, taskQueue, ...workflowSource(), activities });
    const id = `publish:simulated:1.0.0:${randomUUID()}`;
    await worker.runUntil(
      client.workflow.execute('PublishImage', {
        args: [{ source: 'x.iso', image: 'simulated', version: '1.0.0' }],
        taskQueue,
        workflowId: id,
      }),
    );
    await connection.close();
    const tera = (await client.workflow.getHandle(id).fetchHistory()).events!.length;
    report(
      'history events',
      `${formatBytes(SIZE)} publish: ${published.events}, simulated 1 TiB (${plan.blockCount} blocks): ${tera}`,
    );
    if (tera > 5000) failed = true;
  } finally {
    for (const w of workers) await w.stop();
    await catalog.close();
    await client.connection.close();
    await stopServices(config);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  () => {
    fs.mkdirSync(path.join(PROJECT_ROOT, 'test-output'), { recursive: true });
    fs.writeFileSync(path.join(PROJECT_ROOT, 'test-output', 'bench.txt'), `${lines.join('\n')}\n`);
    process.exit(failed ? 1 : 0);
  },
  (err: Error) => {
    process.stderr.write(`bench failed: ${err.message}\n`);
    process.exit(2);
  },
);
