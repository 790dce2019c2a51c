import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { DeployResult } from '../../src/shared/deploy-input';
import type { PublishResult } from '../../src/shared/publish-input';
import { edgeOva, manifestLine, tarArchive } from '../images/build';
import { startTcpProxy, type TcpProxy } from '../harness/faults';
import { metricNamesInArtifacts } from '../harness/observability-artifacts';
import { invalidLines, metricFamilyNames, sampleValue, scrape, type Scrape } from '../harness/prometheus';
import { spawnWorker, until, type WorkerProcess } from '../harness/worker-process';
import { repositoryRoot, startWorld, workflowFailure, type TestWorld } from '../helpers';

const MiB = 2 ** 20;

/** The URL a worker process logged it serves its metrics at. */
async function metricsUrl(worker: WorkerProcess): Promise<string> {
  let url: string | undefined;
  await until(
    'the worker to serve its metrics',
    () => {
      const line = fs
        .readFileSync(worker.logFile, 'utf8')
        .split('\n')
        .find((l) => l.includes('"metrics served"'));
      url = line && (JSON.parse(line) as { url: string }).url;
      return url !== undefined;
    },
    120_000,
  );
  return url!;
}

/** Scraped and checked: a real parser reads it, and no line breaks the text format. */
async function checkedScrape(url: string): Promise<Scrape> {
  const s = await scrape(url);
  expect(invalidLines(s.text)).toEqual([]);
  expect(s.families.length).toBeGreaterThan(0);
  return s;
}

/**
 * A control worker and an agent as real processes with VMHUB_METRICS_ADDRESS set, a publish and a deploy
 * on the real services, and both endpoints scraped: vmhub's byte counters equal the image's size, the SDK's
 * families are there, and a forced verification failure is counted.
 */
describe('Prometheus metrics of a worker and an agent', () => {
  let world: TestWorld;
  const workers: WorkerProcess[] = [];
  const files: string[] = [];
  const taskQueue = `metrics-${randomUUID()}`;
  const sddc = 'metrics-east-1';
  const agentQueue = `sddc-${sddc}-${randomUUID().slice(0, 8)}`;
  const datastore = path.join(repositoryRoot(), '..', `sddc-${randomUUID().slice(0, 6)}`);
  const urls: { control?: string; agent?: string } = {};
  // The agent reaches Temporal through this, which the test cuts to see the SDK count failed requests.
  let link: TcpProxy;

  beforeAll(async () => {
    world = await startWorld({ blockSizeBytes: 4 * MiB });
    await world.deps.catalog.sddcs.add({
      name: sddc,
      dataCenter: 'dc-east',
      taskQueue: agentQueue,
      capacity: { cpus: 64, memoryMiB: 262144, diskGiB: 2048 },
    });
    const env = { VMHUB_TASK_QUEUE: taskQueue, MONGODB_URI: world.config.mongodbUri, VMHUB_BLOCK_SIZE_MIB: '4' };
    const temporal = world.config.temporal.address;
    link = await startTcpProxy(Number(temporal.slice(temporal.lastIndexOf(':') + 1)));
    workers.push(spawnWorker(['control'], { ...env, VMHUB_METRICS_ADDRESS: '127.0.0.1:0' }));
    // `:port` means loopback.
    workers.push(
      spawnWorker(['agent', sddc], {
        ...env,
        VMHUB_AGENT_TASK_QUEUE: agentQueue,
        VMHUB_DATASTORE: datastore,
        VMHUB_METRICS_ADDRESS: ':0',
        TEMPORAL_ADDRESS: `127.0.0.1:${link.port}`,
      }),
    );
    urls.control = await metricsUrl(workers[0]);
    urls.agent = await metricsUrl(workers[1]);
    await until('the agent polling', async () => (await world.deps.temporal.recentPollers(agentQueue, 'activity')) > 0, 120_000);
  });
  afterAll(async () => {
    await link.close();
    for (const w of workers) await w.stop();
    for (const f of files) fs.rmSync(f, { force: true });
    fs.rmSync(datastore, { recursive: true, force: true });
    await world.close();
  });

  it('serves the SDK metrics and counts the bytes of a publish and a deploy, and a manifest that does not match', async () => {
    expect(urls.control).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    expect(urls.agent).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    const image = `metrics-${randomUUID().slice(0, 6)}`;
    const { file } = edgeOva(repositoryRoot(), '1.0.0', 6 * MiB, image);
    files.push(path.join(repositoryRoot(), file));
    const published = (await world.client.workflow.execute('PublishImage', {
      args: [{ source: file, image, version: '1.0.0' }],
      taskQueue,
      workflowId: `publish:${image}:1.0.0:${randomUUID()}`,
    })) as PublishResult;
    const deployed = (await world.client.workflow.execute('DeployToSDDCs', {
      args: [{ image, version: '1.0.0', sddcs: [sddc] }],
      taskQueue,
      workflowId: `deploy:${image}:1.0.0:${randomUUID()}`,
    })) as DeployResult;
    expect(deployed.results.map((r) => [r.sddc, r.status])).toEqual([[sddc, 'deployed']]);

    // An OVA whose disk's manifest line is wrong, of another image (its staging is counted too): the publish's inspection refuses it.
    const badImage = `${image}-bad`;
    const bad = edgeOva(repositoryRoot(), '1.0.0', 6 * MiB, badImage);
    files.push(path.join(repositoryRoot(), bad.file));
    const members = bad.members.map((m) =>
      m.name.endsWith('.mf')
        ? { ...m, bytes: Buffer.from(m.bytes.toString().replace(/= [0-9a-f]{64}\n$/, `= ${'0'.repeat(64)}\n`)) }
        : m,
    );
    expect(members.find((m) => m.name.endsWith('.mf'))!.bytes.toString()).toContain(
      manifestLine('sha256', 'edge.ovf', members[0].bytes),
    );
    tarArchive(path.join(repositoryRoot(), bad.file), members);
    const failed = await workflowFailure(
      world.client.workflow.execute('PublishImage', {
        args: [{ source: bad.file, image: badImage, version: '1.0.0' }],
        taskQueue,
        workflowId: `publish:${badImage}:1.0.0:${randomUUID()}`,
      }),
    );
    expect(failed.type).toBe('ManifestMismatch');

    const control = await checkedScrape(urls.control!);
    let agent = await checkedScrape(urls.agent!);
    const size = published.sizeBytes;
    const inEast = { image, location: 'east-primary' };
    const inWest = { image, location: 'west-replica' };
    expect(sampleValue(control, 'vmhub_staged_bytes_total', inEast)).toBe(size);
    expect(sampleValue(control, 'vmhub_committed_bytes_total', inEast)).toBe(size);
    expect(sampleValue(control, 'vmhub_replicated_bytes_total', inWest)).toBe(size);
    expect(sampleValue(control, 'vmhub_crossed_bytes_total', inWest)).toBe(size);
    expect(sampleValue(control, 'vmhub_inspected_bytes_total', { image })).toBe(size);
    expect(sampleValue(control, 'vmhub_deployments_total', { outcome: 'deployed' })).toBe(1);
    expect(sampleValue(control, 'vmhub_verification_failures_total', { kind: 'manifest' })).toBe(1);
    expect(sampleValue(control, 'vmhub_replicas', { location: 'west-replica', state: 'verified' })).toBe(1);
    expect(sampleValue(control, 'vmhub_byte_budget_used_bytes')).toBe(0);
    expect(sampleValue(control, 'vmhub_hashing_queue_depth')).toBe(0);
    expect(sampleValue(agent, 'vmhub_downloaded_bytes_total', { image, sddc })).toBe(size);
    expect(sampleValue(agent, 'vmhub_verification_failures_total', { kind: 'sha256' })).toBe(0);
    expect(sampleValue(agent, 'vmhub_process_resident_memory_bytes')).toBeGreaterThan(0);

    // The SDK's own families, merged into the same response.
    const names = new Set([...metricFamilyNames(control), ...metricFamilyNames(agent)]);
    for (const sdk of [
      'temporal_worker_task_slots_available',
      'temporal_activity_schedule_to_start_latency_seconds',
      'temporal_workflow_completed',
      'temporal_num_pollers',
    ]) {
      expect(metricFamilyNames(control)).toContain(sdk);
    }
    expect(metricFamilyNames(agent)).toContain('temporal_activity_execution_latency_seconds');
    // Cut off from Temporal, the agent's polls fail, and the SDK counts them.
    expect(metricFamilyNames(agent)).not.toContain('temporal_long_request_failure');
    await link.close();
    await until('a failed poll counted', async () => {
      agent = await checkedScrape(urls.agent!);
      return metricFamilyNames(agent).has('temporal_long_request_failure');
    });
    for (const name of metricFamilyNames(agent)) names.add(name);
    process.stderr.write(
      `SDK families scraped: ${[...names]
        .filter((n) => n.startsWith('temporal_'))
        .sort()
        .join(' ')}\n`,
    );

    // What the alert rules and the dashboard read is what the endpoints serve.
    const missing = metricNamesInArtifacts().filter((name) => !names.has(name));
    expect(missing).toEqual([]);
  });
});
