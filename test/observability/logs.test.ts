import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ContainerSASPermissions, generateBlobSASQueryParameters, StorageSharedKeyCredential } from '@azure/storage-blob';
import type { DeployResult } from '../../src/shared/deploy-input';
import type { PublishResult } from '../../src/shared/publish-input';
import { AZURITE_DEV_KEY, credentialValues } from '../harness/credentials';
import { spawnWorker, until, type WorkerProcess } from '../harness/worker-process';
import { repositoryRoot, startWorld, writeIsoFile, type TestWorld } from '../helpers';

const MiB = 2 ** 20;

type Line = Record<string, unknown> & { time: string; level: string; msg: string };

/** Every line of a worker's log, each parsed as one JSON object; a line that is not one fails the test with its text. */
function parseLines(file: string): Line[] {
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      try {
        return JSON.parse(l) as Line;
      } catch {
        throw new Error(`not a JSON line in ${path.basename(file)}: ${l}`);
      }
    });
}

/** A read-only SAS for the test storage's container, as an agent would be given in production. */
function readSas(): string {
  const credential = new StorageSharedKeyCredential('devstoreaccount1', AZURITE_DEV_KEY);
  return generateBlobSASQueryParameters(
    { containerName: 'vm-images', permissions: ContainerSASPermissions.parse('rl'), expiresOn: new Date(Date.now() + 3600_000) },
    credential,
  ).toString();
}

/**
 * The logs of a publish and a deploy, from a control worker and an agent that are real processes writing
 * JSON lines to stderr at DEBUG: every line parses, every activity line names its run, the agent's lines
 * name the SDDC, the image and the version, and no storage credential is in any line. The agent reads
 * with a SAS token, as agents do in production, so a token that leaked into a line would be found.
 */
describe('structured logs', () => {
  let world: TestWorld;
  const workers: WorkerProcess[] = [];
  const sddc = `logs-${randomUUID().slice(0, 6)}`;
  const agentQueue = `sddc-${sddc}`;
  const taskQueue = `logs-${randomUUID()}`;
  const datastore = fs.mkdtempSync(path.join(os.tmpdir(), 'vmhub-logs-'));
  const sas = readSas();

  beforeAll(async () => {
    world = await startWorld({ blockSizeBytes: 4 * MiB });
    await world.deps.catalog.sddcs.add({
      name: sddc,
      dataCenter: 'dc-east',
      taskQueue: agentQueue,
      capacity: { cpus: 8, memoryMiB: 16384, diskGiB: 100 },
    });
  });
  afterAll(async () => {
    for (const w of workers) await w.stop();
    await world.close();
    fs.rmSync(datastore, { recursive: true, force: true });
  });

  it('name their run, their SDDC and their image, and hold no storage key or SAS token', async () => {
    const env = { VMHUB_TASK_QUEUE: taskQueue, MONGODB_URI: world.config.mongodbUri, VMHUB_LOG_LEVEL: 'DEBUG' };
    const control = spawnWorker(['control'], { ...env, VMHUB_BLOCK_SIZE_MIB: '4' });
    const agent = spawnWorker(['agent', sddc], {
      ...env,
      VMHUB_AGENT_TASK_QUEUE: agentQueue,
      VMHUB_DATASTORE: datastore,
      VMHUB_DC_EAST_READ_SAS: sas,
      VMHUB_DC_WEST_READ_SAS: sas,
    });
    workers.push(control, agent);
    await until('the agent to poll', async () => (await world.deps.temporal.recentPollers(agentQueue, 'activity')) > 0, 120_000);

    const version = '1.0.0';
    writeIsoFile(path.join(repositoryRoot(), 'logs-edge.iso'), 10 * MiB, 24);
    const publishId = `publish:logs-edge:${version}:${randomUUID()}`;
    const published = (await world.client.workflow.execute('PublishImage', {
      args: [{ source: 'logs-edge.iso', image: 'logs-edge', version }],
      taskQueue,
      workflowId: publishId,
    })) as PublishResult;
    expect(published.sizeBytes).toBe(10 * MiB);
    const deployId = `deploy:logs-edge:${version}:${randomUUID()}`;
    const deployed = (await world.client.workflow.execute('DeployToSDDCs', {
      args: [{ image: 'logs-edge', version, sddcs: [sddc] }],
      taskQueue,
      workflowId: deployId,
    })) as DeployResult;
    expect(deployed.results.map((r) => [r.sddc, r.status])).toEqual([[sddc, 'deployed']]);
    // Stopped, so every line is written before the files are read.
    await control.stop();
    await agent.stop();

    const controlLines = parseLines(control.logFile);
    const agentLines = parseLines(agent.logFile);
    const all = [...controlLines, ...agentLines];
    for (const line of all) {
      expect(['trace', 'debug', 'info', 'warn', 'error']).toContain(line.level);
      expect(Number.isNaN(Date.parse(line.time))).toBe(false);
      expect(typeof line.msg).toBe('string');
    }

    // Every activity line names its workflow run, its activity type and its attempt.
    const activityLines = all.filter((l) => l.activityType !== undefined);
    expect(activityLines.length).toBeGreaterThan(0);
    for (const line of activityLines) {
      expect(line).toEqual(
        expect.objectContaining({ workflowId: expect.any(String), runId: expect.any(String), attempt: expect.any(Number) }),
      );
      expect(line).not.toHaveProperty('taskToken');
    }
    const publishRun = activityLines.filter((l) => l.workflowId === publishId);
    expect(publishRun.map((l) => l.activityType)).toEqual(
      expect.arrayContaining(['claimVersion', 'stageBlockRange', 'commitBlocks']),
    );
    expect(publishRun.find((l) => l.activityType === 'commitBlocks' && l.msg === 'Activity completed')).toMatchObject({
      image: 'logs-edge',
      version,
      location: 'east-primary',
    });
    expect(publishRun.find((l) => l.activityType === 'replicateImage' && l.msg === 'replicated')).toMatchObject({
      image: 'logs-edge',
      version,
      location: 'west-replica',
    });

    // The agent's lines about the download name the SDDC, the image and the version, and the deploy's run.
    const download = agentLines.filter((l) => l.activityType === 'downloadImage');
    const done = download.find((l) => l.msg === 'deployed');
    expect(done).toMatchObject({ sddc, image: 'logs-edge', version, sdkComponent: 'activity' });
    expect(String(done?.workflowId)).toContain(deployId);
    expect(download.find((l) => l.msg === 'Activity completed')).toMatchObject({ sddc, image: 'logs-edge', version });

    // A workflow's lines carry its input's image and version (the interceptor in the prebuilt bundle).
    const workflowDone = controlLines.find(
      (l) => l.workflowId === deployId && l.workflowType === 'DeployToSDDCs' && l.msg === 'Workflow completed',
    );
    expect(workflowDone).toMatchObject({ runId: expect.any(String), image: 'logs-edge', version });

    // No credential: not the account key, not the agent's SAS token nor its signature, in any line.
    const text = [fs.readFileSync(control.logFile, 'utf8'), fs.readFileSync(agent.logFile, 'utf8')].join('\n');
    const signature = new URLSearchParams(sas).get('sig')!;
    for (const secret of [...credentialValues(), sas, signature, encodeURIComponent(signature)])
      expect(text).not.toContain(secret);
    expect(text).not.toMatch(/(?<![A-Za-z0-9_])sig=(?!\[redacted\])/i);
    expect(text).not.toMatch(/AccountKey=(?!\[redacted\])/i);
  }, 600_000);
});
