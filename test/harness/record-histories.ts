import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { buildBundle } from '../../scripts/build-bundle';
import type { DeployResultRow, FleetProgress } from '../../src/shared/deploy-input';
import {
  deployActivities,
  deployedDownload,
  publishActivities,
  runWorker,
  startTestEnvironment,
  transferUntilCancelled,
} from './mock-activities';

/**
 * Records the histories (binary protobuf) that test/workflows/replay.test.ts replays against the current workflow code.
 * `npx tsx test/harness/record-histories.ts <set>` records one set: `original` (a publish that deploys, a deploy, a failed
 * publish, and a publish and a deploy cancelled mid-transfer, made before deploys fanned out and transfers had a queue of
 * their own) or `fleet` (a publish with its transfers on the transfer queue, and a deploy fanned out to two batches, with
 * one batch's own history). Record only a set of new behaviour: the histories already kept are what running workflows
 * look like, and must keep replaying.
 */
const SETS = ['original', 'fleet'] as const;

async function main(): Promise<void> {
  const set = process.argv[2] as (typeof SETS)[number];
  if (!SETS.includes(set)) throw new Error(`name the set of histories to record: ${SETS.join(' or ')}`);
  const bundlePath = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'vmhub-record-')), 'bundle.js');
  await buildBundle(bundlePath);
  process.env.VMHUB_WORKFLOW_BUNDLE = bundlePath;
  const env = await startTestEnvironment();
  const out = path.join(__dirname, '..', 'histories');
  // A replay must run under the recorded workflow ID: the deploy a publish starts is named after it.
  const indexFile = path.join(out, 'workflow-ids.json');
  const index = JSON.parse(fs.readFileSync(indexFile, 'utf8')) as Record<string, string>;
  const save = async (name: string, workflowId: string) => {
    const history = await env.client.workflow.getHandle(workflowId).fetchHistory();
    fs.writeFileSync(path.join(out, `${name}.binpb`), temporal.api.history.v1.History.encode(history).finish());
    index[`${name}.binpb`] = workflowId;
    fs.writeFileSync(indexFile, `${JSON.stringify(index, null, 2)}\n`);
    process.stderr.write(`recorded ${name}: ${history.events?.length} events\n`);
  };
  try {
    await (set === 'fleet' ? recordFleet(env, save) : recordOriginal(env, save));
  } finally {
    await env.teardown();
  }
}

type Save = (name: string, workflowId: string) => Promise<void>;

async function recordOriginal(env: TestWorkflowEnvironment, save: Save): Promise<void> {
  const rows: DeployResultRow[] = [];
  const agentQueue = `sddc-${randomUUID()}`;
  const agent = {
    taskQueue: agentQueue,
    activities: { downloadImage: deployedDownload },
  };
  const control = { ...publishActivities([]), ...deployActivities(rows, agentQueue, ['east-1', 'tiny'], 1) };

  await runWorker(
    env,
    control,
    async (taskQueue) => {
      const publishId = `publish:app:1.0.0:${randomUUID()}`;
      await env.client.workflow.execute('PublishImage', {
        args: [{ source: 'app.ova', image: 'app', version: '1.0.0', deployTo: ['east-1', 'tiny'] }],
        taskQueue,
        workflowId: publishId,
      });
      await save('publish-with-deploy', publishId);
      const deployId = `deploy:app:1.0.0:${randomUUID()}`;
      await env.client.workflow.execute('DeployToSDDCs', {
        args: [{ image: 'app', version: '1.0.0', sddcs: ['east-1', 'tiny'] }],
        taskQueue,
        workflowId: deployId,
      });
      await save('deploy', deployId);
    },
    agent,
  );

  const failing = publishActivities([], {
    stageBlockRange: transferUntilCancelled([], 'stage'),
    inspectSource: async () => {
      await new Promise((r) => setTimeout(r, 300));
      throw ApplicationFailure.nonRetryable('disk1.vmdk does not match the manifest', 'ManifestMismatch');
    },
  });
  await runWorker(env, failing, async (taskQueue) => {
    const failedId = `publish:app:1.0.1:${randomUUID()}`;
    await env.client.workflow
      .execute('PublishImage', {
        args: [{ source: 'app.ova', image: 'app', version: '1.0.1' }],
        taskQueue,
        workflowId: failedId,
      })
      .catch(() => undefined);
    await save('publish-failed', failedId);
  });

  // Cancelled while transfers run: the cleanup steps a cancel takes are part of what must replay.
  const log: string[] = [];
  const stalled = publishActivities([], {
    stageBlockRange: transferUntilCancelled(log, 'stage'),
    inspectSource: transferUntilCancelled(log, 'inspect'),
  });
  const cancelAgent = {
    taskQueue: agentQueue,
    activities: { downloadImage: transferUntilCancelled(log, 'download'), discardDownload: async () => ({ removed: true }) },
  };
  const cancelControl = { ...stalled, ...deployActivities([], agentQueue, ['east-1'], 1) };
  await runWorker(
    env,
    cancelControl,
    async (taskQueue) => {
      const whenStarted = async (what: string) => {
        while (!log.includes(`${what} started`)) await new Promise((r) => setTimeout(r, 20));
      };
      const publishId = `publish:app:1.0.2:${randomUUID()}`;
      const publish = await env.client.workflow.start('PublishImage', {
        args: [{ source: 'app.ova', image: 'app', version: '1.0.2' }],
        taskQueue,
        workflowId: publishId,
      });
      await whenStarted('stage');
      await publish.cancel();
      await publish.result().catch(() => undefined);
      await save('publish-cancelled', publishId);
      const deployId = `deploy:app:1.0.0:${randomUUID()}`;
      const deploy = await env.client.workflow.start('DeployToSDDCs', {
        args: [{ image: 'app', version: '1.0.0', sddcs: ['east-1'] }],
        taskQueue,
        workflowId: deployId,
      });
      await whenStarted('download');
      await deploy.cancel();
      await deploy.result().catch(() => undefined);
      await save('deploy-cancelled', deployId);
    },
    cancelAgent,
  );
}

/** A publish whose transfers run on the transfer queue, and a deploy of 150 SDDCs fanned out to two batches. */
async function recordFleet(env: TestWorkflowEnvironment, save: Save): Promise<void> {
  const agentQueue = `sddc-${randomUUID()}`;
  const names = Array.from({ length: 150 }, (_, i) => `sddc-${String(i).padStart(3, '0')}`);
  const control = { ...publishActivities([]), ...deployActivities([], agentQueue, names, 1) };
  await runWorker(
    env,
    control,
    async (taskQueue) => {
      const publishId = `publish:app:2.0.0:${randomUUID()}`;
      await env.client.workflow.execute('PublishImage', {
        args: [{ source: 'app.ova', image: 'app', version: '2.0.0' }],
        taskQueue,
        workflowId: publishId,
      });
      await save('publish-transfer-queue', publishId);
      const deployId = `deploy:app:1.0.0:${randomUUID()}`;
      const deploy = await env.client.workflow.start('DeployToSDDCs', {
        args: [{ image: 'app', version: '1.0.0', sddcs: 'all' }],
        taskQueue,
        workflowId: deployId,
      });
      await deploy.result();
      await save('deploy-fanned-out', deployId);
      const { batches } = await deploy.query<FleetProgress>('progress');
      await save('deploy-batch', batches[0].workflowId);
    },
    { taskQueue: agentQueue, activities: { downloadImage: deployedDownload } },
  );
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack}\n`);
  process.exit(1);
});
