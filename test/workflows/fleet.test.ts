import { randomUUID } from 'node:crypto';
import { Context } from '@temporalio/activity';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { DeployResult, DeployResultRow, FleetProgress } from '../../src/shared/deploy-input';
import type { PublishResult } from '../../src/shared/publish-input';
import {
  deployActivities,
  deployedDownload,
  deployPlan,
  fleetPlanOf,
  publishActivities,
  runWorker,
  startTestEnvironment,
} from '../harness/mock-activities';

/**
 * Fleet scale on the time-skipping test server with mocked activities: transfers poll their own task
 * queue, and a deploy fans out to batches whose rows the parent folds into counts.
 */
let env: TestWorkflowEnvironment;
beforeAll(async () => {
  env = await startTestEnvironment();
}, 120_000);
afterAll(() => env?.teardown());

const names = (n: number) => Array.from({ length: n }, (_, i) => `sddc-${String(i).padStart(3, '0')}`);
const agent = (taskQueue: string) => ({ taskQueue, activities: { downloadImage: deployedDownload } });

/** How a DeployToSDDCs with this input ended, its agent deploying at once: the failure, if it failed. */
const deployOutcome = (control: object, agentQueue: string, input: object) =>
  runWorker(
    env,
    control,
    (taskQueue) =>
      env.client.workflow
        .execute('DeployToSDDCs', { args: [input], taskQueue, workflowId: randomUUID() })
        .catch((e: unknown) => e),
    agent(agentQueue),
  );

describe('task queues', () => {
  it('runs staging, inspection and commit on the transfer queue, bookkeeping on the control queue', async () => {
    const queues: Record<string, string> = {};
    const seen = (name: string) => {
      queues[name] = Context.current().info.taskQueue;
    };
    const base = publishActivities([]);
    const activities = publishActivities([], {
      probeSource: async (i) => (seen('probe'), base.probeSource!(i)),
      inspectSource: async (i) => (seen('inspect'), base.inspectSource!(i)),
      stageBlockRange: async (i) => (seen('stage'), base.stageBlockRange!(i)),
      commitBlocks: async (i) => (seen('commit'), base.commitBlocks!(i)),
      markAvailable: async (i) => (seen('mark'), base.markAvailable!(i)),
    });
    const control = await runWorker(env, activities, async (taskQueue) => {
      await env.client.workflow.execute('PublishImage', {
        args: [{ source: 'app.ova', image: 'app', version: '1.0.0' }],
        taskQueue,
        workflowId: randomUUID(),
      });
      return taskQueue;
    });
    const transfer = `${control}-transfer`;
    expect(queues).toEqual({ probe: control, inspect: transfer, stage: transfer, commit: transfer, mark: control });
  });
});

describe('DeployToSDDCs fan-out', () => {
  it('deploys 250 SDDCs in batches of at most 100 and keeps only the skipped row beside the counts', async () => {
    const rows: DeployResultRow[] = [];
    const agentQueue = `sddc-${randomUUID()}`;
    const fleet = [...names(249), 'tiny'];
    const { result, progress } = await runWorker(
      env,
      deployActivities(rows, agentQueue, fleet, 1),
      async (taskQueue) => {
        const handle = await env.client.workflow.start('DeployToSDDCs', {
          args: [{ image: 'app', version: '1.0.0', sddcs: 'all' }],
          taskQueue,
          workflowId: randomUUID(),
        });
        return { result: (await handle.result()) as DeployResult, progress: await handle.query<FleetProgress>('progress') };
      },
      agent(agentQueue),
    );
    expect(result.counts).toEqual({ deployed: 249, skipped: 1 });
    expect(result.results).toEqual([expect.objectContaining({ sddc: 'tiny', status: 'skipped' })]);
    expect(rows).toHaveLength(250);
    expect(progress.batches.map((b) => [b.sddcs, b.done])).toEqual([
      [100, true],
      [100, true],
      [50, true],
    ]);
    expect(progress.sddcsTotal).toBe(250);
  });

  it('a publish that deploys to a fleet reports the counts of its deploy beside the rows', async () => {
    const agentQueue = `sddc-${randomUUID()}`;
    const fleet = [...names(149), 'tiny'];
    const control = { ...publishActivities([]), ...deployActivities([], agentQueue, fleet, 1) };
    const published = (await runWorker(
      env,
      control,
      (taskQueue) =>
        env.client.workflow.execute('PublishImage', {
          args: [{ source: 'app.ova', image: 'app', version: '1.0.0', deployTo: fleet }],
          taskQueue,
          workflowId: randomUUID(),
        }),
      agent(agentQueue),
    )) as PublishResult;
    expect(published.deploy?.counts).toEqual({ deployed: 149, skipped: 1 });
    expect(published.deploy?.results).toEqual([expect.objectContaining({ sddc: 'tiny', status: 'skipped' })]);
  });

  it('fails the SDDCs of a batch that cannot plan, deploys the others, and ends DeployIncomplete', async () => {
    const rows: DeployResultRow[] = [];
    const agentQueue = `sddc-${randomUUID()}`;
    const fleet = names(150);
    const control = {
      ...deployActivities(rows, agentQueue, fleet, 1),
      planDeployment: async (input: { sddcs: string[] | 'all' }) => {
        const sddcs = input.sddcs === 'all' ? fleet : input.sddcs;
        if (sddcs.includes('sddc-120')) throw ApplicationFailure.nonRetryable('unknown SDDC sddc-120', 'UnknownSddc');
        return deployPlan(agentQueue, sddcs);
      },
    };
    const err = await deployOutcome(control, agentQueue, { image: 'app', version: '1.0.0', sddcs: 'all' });
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const cause = (err as WorkflowFailedError).cause as ApplicationFailure;
    expect(cause.type).toBe('DeployIncomplete');
    expect(cause.message).toMatch(/^50 of 150 SDDCs failed: sddc-100 \(.*UnknownSddc: unknown SDDC sddc-120\).*; 40 more$/);
    const result = cause.details![0] as DeployResult;
    expect(result.counts).toEqual({ deployed: 100, failed: 50 });
    expect(result.results.map((r) => r.sddc)).toEqual(fleet.slice(100));
    expect(rows).toHaveLength(100);
  });

  it('a fleet-wide failure keeps 100 rows, counts every SDDC, says where the rest are, and releases its lease', async () => {
    const rows: DeployResultRow[] = [];
    const leases: string[] = [];
    const agentQueue = `sddc-${randomUUID()}`;
    const fleet = names(250);
    const control = {
      ...deployActivities(rows, agentQueue, fleet, 1),
      holdDeployLease: async (input: { image: string; version: string; run: { workflowId: string } }) => {
        leases.push(`hold ${input.image}@${input.version} ${input.run.workflowId}`);
      },
      releaseDeployLease: async (input: { workflowId: string }) => {
        leases.push(`release ${input.workflowId}`);
      },
    };
    const refusing = async (input: { sddc: string }) => {
      throw ApplicationFailure.nonRetryable(
        `${input.sddc}: ${'no room left on the datastore; '.repeat(20)}`,
        'InsufficientSpace',
      );
    };
    const workflowId = randomUUID();
    const err = await runWorker(
      env,
      control,
      (taskQueue) =>
        env.client.workflow
          .execute('DeployToSDDCs', { args: [{ image: 'app', version: '1.0.0', sddcs: 'all' }], taskQueue, workflowId })
          .catch((e: unknown) => e),
      { taskQueue: agentQueue, activities: { downloadImage: refusing } },
    );
    const cause = (err as WorkflowFailedError).cause as ApplicationFailure;
    expect(cause.type).toBe('DeployIncomplete');
    expect(cause.message).toMatch(/^250 of 250 SDDCs failed: sddc-000 .*; 240 more$/);
    const result = cause.details![0] as DeployResult;
    expect(result.counts).toEqual({ failed: 250 });
    expect(result.results).toHaveLength(100);
    expect(result.results.every((r) => r.status === 'failed' && r.reason!.length <= 300)).toBe(true);
    expect(result.rowsOmitted).toBe(150);
    expect(result.note).toContain('vmhub show app@1.0.0');
    // The catalog is told every row, with its whole reason.
    expect(rows).toHaveLength(250);
    expect(rows[0].reason!.length).toBeGreaterThan(300);
    expect(leases).toEqual([`hold app@1.0.0 ${workflowId}`, `release ${workflowId}`]);
  });
});

describe('DeployToSDDCs without some agents', () => {
  /** planFleet of this fleet: all or nothing, it finds lab-1 without an agent. */
  const planWithoutLab = (agentQueue: string, fleet: string[]) => async (input: { allOrNothing?: boolean }) => ({
    ...fleetPlanOf(deployPlan(agentQueue, fleet)),
    ...(input.allOrNothing ? { noAgent: { count: 1, sddcs: [{ name: 'lab-1', taskQueue: 'sddc-lab-1' }] } } : {}),
  });

  /** 150 SDDCs in two batches; the agents of sddc-xx7 (15 of them) poll nowhere. */
  function partlyServed(rows: DeployResultRow[], agentQueue: string) {
    const fleet = names(150);
    const silent = (name: string) => name.endsWith('7');
    const planOf = (sddcs: string[]) => {
      const plan = deployPlan(agentQueue, sddcs);
      const targets = plan.targets.map((t) => ({
        ...t,
        sddc: { ...t.sddc, taskQueue: silent(t.sddc.name) ? `gone-${t.sddc.name}` : agentQueue },
      }));
      return { ...plan, targets };
    };
    const control = {
      ...deployActivities(rows, agentQueue, fleet, 1),
      planDeployment: async (input: { sddcs: string[] | 'all' }) => planOf(input.sddcs === 'all' ? fleet : input.sddcs),
      agentsPolling: async (input: { taskQueue: string }) => (input.taskQueue.startsWith('gone-') ? 0 : 1),
    };
    return { fleet, silent, control };
  }

  it('skips each SDDC whose agent does not poll, deploys the others and completes', async () => {
    const rows: DeployResultRow[] = [];
    const agentQueue = `sddc-${randomUUID()}`;
    const { fleet, silent, control } = partlyServed(rows, agentQueue);
    const result = (await runWorker(
      env,
      control,
      (taskQueue) =>
        env.client.workflow.execute('DeployToSDDCs', {
          args: [{ image: 'app', version: '1.0.0', sddcs: 'all' }],
          taskQueue,
          workflowId: randomUUID(),
        }),
      agent(agentQueue),
    )) as DeployResult;
    expect(result.counts).toEqual({ deployed: 135, skipped: 15 });
    // A fleet past 100 SDDCs lists only the rows that did not deploy.
    expect(result.results.map((r) => r.sddc)).toEqual(fleet.filter(silent));
    expect(result.results[0]).toMatchObject({
      status: 'skipped',
      source: null,
      reason:
        'no agent: nothing polled task queue gone-sddc-007 in the last five minutes; start it with `npm run agent -- sddc-007` and deploy again',
    });
    expect(rows.filter((r) => r.status === 'skipped').map((r) => r.sddc)).toEqual(expect.arrayContaining(fleet.filter(silent)));
    expect(rows).toHaveLength(150);
  });

  it('all or nothing, refuses NoAgent before any batch or lease when the plan finds SDDCs without an agent', async () => {
    const rows: DeployResultRow[] = [];
    const steps: string[] = [];
    const agentQueue = `sddc-${randomUUID()}`;
    const fleet = [...names(3), 'lab-1'];
    const control = {
      ...deployActivities(rows, agentQueue, fleet, 1),
      planFleet: planWithoutLab(agentQueue, fleet),
      holdDeployLease: async () => void steps.push('hold'),
      planDeployment: async () => {
        steps.push('batch');
        return deployPlan(agentQueue, fleet);
      },
    };
    const err = await deployOutcome(control, agentQueue, { image: 'app', version: '1.0.0', sddcs: 'all', allOrNothing: true });
    const cause = (err as WorkflowFailedError).cause as ApplicationFailure;
    expect(cause.type).toBe('NoAgent');
    expect(cause.message).toBe(
      'all or nothing: no agent has polled in the last five minutes for lab-1 (task queue sddc-lab-1), so nothing was deployed; start it (`npm run agent -- lab-1`) and deploy again, or deploy without all-or-nothing to skip it',
    );
    const result = cause.details![0] as DeployResult;
    expect(result.counts).toEqual({ failed: 1, skipped: 3 });
    expect(result.results.map((r) => [r.sddc, r.status])).toEqual([
      ['lab-1', 'failed'],
      ['sddc-000', 'skipped'],
      ['sddc-001', 'skipped'],
      ['sddc-002', 'skipped'],
    ]);
    expect(result.results[0].reason).toMatch(/^NoAgent: no agent has polled task queue sddc-lab-1 /);
    expect(steps).toEqual([]);
    expect(rows).toEqual([]);
  });

  it('a publish whose all-or-nothing deploy is refused is published, and reports the refused rows', async () => {
    const agentQueue = `sddc-${randomUUID()}`;
    const fleet = ['east-1', 'lab-1'];
    const control = {
      ...publishActivities([]),
      ...deployActivities([], agentQueue, fleet, 1),
      planFleet: planWithoutLab(agentQueue, fleet),
    };
    const published = (await runWorker(
      env,
      control,
      (taskQueue) =>
        env.client.workflow.execute('PublishImage', {
          args: [{ source: 'app.ova', image: 'app', version: '1.0.0', deployTo: fleet, deployAllOrNothing: true }],
          taskQueue,
          workflowId: randomUUID(),
        }),
      agent(agentQueue),
    )) as PublishResult;
    expect(published.version).toBe('1.0.0');
    expect(published.deploy?.counts).toEqual({ failed: 1, skipped: 1 });
    expect(published.deploy?.results).toEqual([
      expect.objectContaining({ sddc: 'lab-1', status: 'failed', reason: expect.stringMatching(/^NoAgent: /) }),
      expect.objectContaining({
        sddc: 'east-1',
        status: 'skipped',
        reason: 'all or nothing: not deployed, since an SDDC has no agent',
      }),
    ]);
  });
});
