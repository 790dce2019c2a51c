import { randomUUID } from 'node:crypto';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Activities } from '../../src/activities';
import type { AgentActivities } from '../../src/activities/agent';
import type { DeployResult, DeployResultRow } from '../../src/shared/deploy-input';
import type { PublishProgress } from '../../src/shared/publish-input';
import {
  deployActivities,
  location,
  publishActivities,
  replicationUntilCancelled,
  runWorker as runOn,
  startTestEnvironment,
  transferUntilCancelled,
} from '../harness/mock-activities';

/**
 * The failure, concurrency and cancellation paths of PublishImage and DeployToSDDCs, on the SDK's
 * time-skipping test server with mocked activities: each path must end the run, typed, with cleanup
 * done only after every transfer has stopped.
 */
let env: TestWorkflowEnvironment;
beforeAll(async () => {
  env = await startTestEnvironment();
}, 120_000);
afterAll(() => env?.teardown());

const runWorker = <T>(
  activities: Partial<Activities>,
  fn: (taskQueue: string) => Promise<T>,
  agent?: { taskQueue: string; activities: Partial<AgentActivities> },
) => runOn(env, activities, fn, agent);

/** The failure a run ended with. */
async function failureOf(run: Promise<unknown>): Promise<unknown> {
  const err = await run.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  return (err as WorkflowFailedError).cause;
}

const publishInput = { source: 'app.ova', image: 'app', version: '1.0.0' };

describe('PublishImage failure paths', () => {
  it('an inspection failure while ranges stage cancels them, waits for them to stop, then cleans up', async () => {
    const log: string[] = [];
    const activities = publishActivities(log, {
      stageBlockRange: transferUntilCancelled(log, 'stage'),
      inspectSource: async () => {
        await new Promise((r) => setTimeout(r, 300));
        throw ApplicationFailure.nonRetryable('disk1.vmdk does not match the manifest', 'ManifestMismatch');
      },
    });
    const cause = await runWorker(activities, (taskQueue) =>
      failureOf(env.client.workflow.execute('PublishImage', { args: [publishInput], taskQueue, workflowId: randomUUID() })),
    );
    expect(cause).toBeInstanceOf(ApplicationFailure);
    expect((cause as ApplicationFailure).type).toBe('ManifestMismatch');
    expect(log).toEqual(['stage started', 'stage stopped', 'abandon failed']);
  });

  it('a cancel during staging stops staging, commits nothing and ends the run Cancelled with its cleanup reported', async () => {
    const log: string[] = [];
    const activities = publishActivities(log, {
      stageBlockRange: transferUntilCancelled(log, 'stage'),
      inspectSource: transferUntilCancelled(log, 'inspect'),
    });
    const { cause, progress } = await runWorker(activities, async (taskQueue) => {
      const handle = await env.client.workflow.start('PublishImage', {
        args: [publishInput],
        taskQueue,
        workflowId: randomUUID(),
      });
      while (log.filter((l) => l.endsWith('started')).length < 2) await new Promise((r) => setTimeout(r, 20));
      await handle.cancel();
      const failed = await failureOf(handle.result());
      return { cause: failed, progress: await handle.query<PublishProgress>('progress') };
    });
    expect(cause).toBeInstanceOf(CancelledFailure);
    expect(log).not.toContain('commit');
    expect(log[log.length - 1]).toBe('abandon cancelled');
    expect(log.filter((l) => l.endsWith('stopped'))).toHaveLength(2);
    expect(progress.phase).toBe('cancelled');
    expect(progress.cleanup).toEqual(['12 staged blocks', 'catalog record marked cancelled']);
  });

  it('a cancel whose staging ends with another error (a dead worker) still ends Cancelled, cleaned up for the run owner', async () => {
    const log: string[] = [];
    const owners: unknown[] = [];
    const activities = publishActivities(log, {
      claimVersion: async (i) => {
        owners.push(i.owner);
        return { state: 'claimed', location };
      },
      // What the run sees when its transfer worker dies: not a cancel, but a failure after it.
      stageBlockRange: async () => {
        await transferUntilCancelled(log, 'stage')().catch(() => undefined);
        throw ApplicationFailure.nonRetryable('activity heartbeat timeout', 'Timeout');
      },
      inspectSource: transferUntilCancelled(log, 'inspect'),
      abandonPublish: async (i) => {
        owners.push(i.owner);
        log.push(`abandon ${i.status}`);
        return { owned: true, removed: [`catalog record marked ${i.status}`] };
      },
    });
    const { cause, progress, firstRunId, workflowId } = await runWorker(activities, async (taskQueue) => {
      const handle = await env.client.workflow.start('PublishImage', {
        args: [publishInput],
        taskQueue,
        workflowId: randomUUID(),
      });
      while (log.filter((l) => l.endsWith('started')).length < 2) await new Promise((r) => setTimeout(r, 20));
      await handle.cancel();
      const failed = await failureOf(handle.result());
      const shown = await handle.query<PublishProgress>('progress');
      return { cause: failed, progress: shown, firstRunId: handle.firstExecutionRunId, workflowId: handle.workflowId };
    });
    expect(cause).toBeInstanceOf(CancelledFailure);
    expect(log).not.toContain('commit');
    expect(log[log.length - 1]).toBe('abandon cancelled');
    expect(progress.phase).toBe('cancelled');
    expect(owners).toEqual([
      { workflowId, runId: firstRunId },
      { workflowId, runId: firstRunId },
    ]);
  });

  it('a cancel while it replicates waits for the copy to stop, marks that replica stale for verify, and says what it did and left', async () => {
    const log: string[] = [];
    const activities = publishActivities(log, replicationUntilCancelled(log));
    const workflowId = randomUUID();
    const { cause, progress } = await runWorker(activities, async (taskQueue) => {
      const handle = await env.client.workflow.start('PublishImage', { args: [publishInput], taskQueue, workflowId });
      // West's copy is done and north's under way.
      const copying = async () =>
        log.includes('replicate started') && (await handle.query<PublishProgress>('progress')).done?.length === 2;
      while (!(await copying())) await new Promise((r) => setTimeout(r, 20));
      await handle.cancel();
      const failed = await failureOf(handle.result());
      return { cause: failed, progress: await handle.query<PublishProgress>('progress') };
    });
    expect(cause).toBeInstanceOf(CancelledFailure);
    const note = `replication cancelled by ${workflowId}; \`vmhub verify app@1.0.0\` copies it again`;
    expect(log).toEqual(['commit', 'replicate started', 'replicate stopped', `check north-replica: ${note}`]);
    expect(progress).toMatchObject({
      phase: 'cancelled',
      done: ['published app@1.0.0: available', 'replicated to west-replica'],
      left: [`north-replica: stale, blob is missing (${note})`],
    });
    expect(progress.cleanup).toBeUndefined();
  });

  it('a version another run is uploading fails fast with VersionConflict, touching nothing', async () => {
    const log: string[] = [];
    const activities = publishActivities(log, {
      claimVersion: async () => {
        throw ApplicationFailure.nonRetryable('app@1.0.0 is being published by workflow publish:app:1.0.0', 'VersionConflict');
      },
      stageBlockRange: transferUntilCancelled(log, 'stage'),
    });
    const cause = await runWorker(activities, (taskQueue) =>
      failureOf(env.client.workflow.execute('PublishImage', { args: [publishInput], taskQueue, workflowId: randomUUID() })),
    );
    expect((cause as ApplicationFailure).type).toBe('VersionConflict');
    expect((cause as ApplicationFailure).message).toContain('publish:app:1.0.0');
    expect(log).toEqual([]);
  });

  it('blocks missing at commit are staged again, then committed', async () => {
    const log: string[] = [];
    let commits = 0;
    const activities = publishActivities(log, {
      stageBlockRange: async ({ range }) => {
        log.push(`stage ${range.first}+${range.count}`);
        return { uploaded: range.count, reused: 0, bytesUploaded: 0 };
      },
      commitBlocks: async () => {
        commits++;
        return commits === 1 ? { committed: false, missing: [{ first: 3, count: 2 }] } : { committed: true, etag: '"2"' };
      },
    });
    const result = await runWorker(activities, (taskQueue) =>
      env.client.workflow.execute('PublishImage', { args: [publishInput], taskQueue, workflowId: randomUUID() }),
    );
    expect(result.version).toBe('1.0.0');
    expect(commits).toBe(2);
    expect(log).toEqual(['stage 0+16', 'stage 0+16']);
  });

  it('an error that cannot change is not retried', async () => {
    let probes = 0;
    const activities = publishActivities([], {
      probeSource: async () => {
        probes++;
        throw ApplicationFailure.create({ message: 'tar header at 4194816 is not valid', type: 'InvalidImage' });
      },
    });
    const cause = await runWorker(activities, (taskQueue) =>
      failureOf(env.client.workflow.execute('PublishImage', { args: [publishInput], taskQueue, workflowId: randomUUID() })),
    );
    expect((cause as ApplicationFailure).type).toBe('InvalidImage');
    expect(probes).toBe(1);
  });
});

describe('DeployToSDDCs failure paths', () => {
  /** Deploys app@1.0.0 to east-1, whose agent never polls, and tiny, which it does not fit; counts the downloads. */
  async function deployWithoutAgent(allOrNothing: boolean) {
    const rows: DeployResultRow[] = [];
    const agentQueue = `sddc-${randomUUID()}`;
    let downloads = 0;
    const input = { image: 'app', version: '1.0.0', sddcs: ['east-1', 'tiny'], ...(allOrNothing ? { allOrNothing } : {}) };
    const outcome = await runWorker(
      deployActivities(rows, agentQueue, ['east-1', 'tiny'], 0),
      (taskQueue) =>
        env.client.workflow.execute('DeployToSDDCs', { args: [input], taskQueue, workflowId: randomUUID() }).then(
          (r) => r as DeployResult,
          (e: unknown) => e,
        ),
      {
        taskQueue: agentQueue,
        activities: {
          downloadImage: async () => {
            downloads++;
            throw new Error('not reached');
          },
        },
      },
    );
    return { outcome, rows, downloads, agentQueue };
  }

  it('an SDDC whose agent never polls is skipped at once, without a download, and the run completes', async () => {
    const { outcome, rows, downloads, agentQueue } = await deployWithoutAgent(false);
    const byName = Object.fromEntries((outcome as DeployResult).results.map((r) => [r.sddc, r]));
    expect(byName['east-1']).toMatchObject({ status: 'skipped', source: null });
    expect(byName['east-1'].reason).toBe(
      `no agent: nothing polled task queue ${agentQueue} in the last five minutes; start it with \`npm run agent -- east-1\` and deploy again`,
    );
    expect(byName.tiny.status).toBe('skipped');
    expect(downloads).toBe(0);
    expect(rows.map((r) => [r.sddc, r.status])).toEqual(
      expect.arrayContaining([
        ['east-1', 'skipped'],
        ['tiny', 'skipped'],
      ]),
    );
  });

  it('all or nothing, an agent gone after the plan fails its SDDC (NoAgent) and the run ends DeployIncomplete', async () => {
    const { outcome, rows, downloads } = await deployWithoutAgent(true);
    expect(outcome).toBeInstanceOf(WorkflowFailedError);
    const cause = (outcome as WorkflowFailedError).cause as ApplicationFailure;
    expect(cause.type).toBe('DeployIncomplete');
    const byName = Object.fromEntries((cause.details?.[0] as DeployResult).results.map((r) => [r.sddc, r]));
    expect(byName['east-1'].status).toBe('failed');
    expect(byName['east-1'].reason).toMatch(/^NoAgent: no agent has polled task queue /);
    expect(byName.tiny.status).toBe('skipped');
    expect(downloads).toBe(0);
    expect(rows).toHaveLength(2);
  });

  it('a cancel during a download stops it, waits for the agent to clean up, records the SDDC and ends Cancelled', async () => {
    const rows: DeployResultRow[] = [];
    const log: string[] = [];
    const agentQueue = `sddc-${randomUUID()}`;
    const cause = await runWorker(
      deployActivities(rows, agentQueue, ['east-1'], 1),
      async (taskQueue) => {
        const handle = await env.client.workflow.start('DeployToSDDCs', {
          args: [{ image: 'app', version: '1.0.0', sddcs: ['east-1'] }],
          taskQueue,
          workflowId: randomUUID(),
        });
        while (!log.includes('download started')) await new Promise((r) => setTimeout(r, 20));
        await handle.cancel();
        return failureOf(handle.result());
      },
      {
        taskQueue: agentQueue,
        activities: {
          downloadImage: transferUntilCancelled(log, 'download'),
          discardDownload: async () => {
            log.push('discard');
            return { removed: false };
          },
        },
      },
    );
    expect(cause).toBeInstanceOf(CancelledFailure);
    expect(log).toEqual(['download started', 'download stopped', 'discard']);
    expect(rows).toHaveLength(1);
    expect(rows[0].status).toBe('failed');
    expect(rows[0].reason).toMatch(/^cancelled/);
  });
});
