import { randomUUID } from 'node:crypto';
import { Context } from '@temporalio/activity';
import { WorkflowFailedError, WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Activities } from '../../src/activities';
import type { DownloadInput } from '../../src/activities/agent';
import type { DeployResultRow, FleetProgress } from '../../src/shared/deploy-input';
import { WAVE_ROWS_KEPT, type RolloutInput, type RolloutPlan, type RolloutProgress } from '../../src/shared/rollout-input';
import {
  deployActivities,
  deployedDownload,
  deployPlan,
  fleetPlanOf,
  runWorker,
  startTestEnvironment,
} from '../harness/mock-activities';

/**
 * Rollout on the time-skipping test server with mocked activities: waves run in order, an approval holds a
 * wave until the Update, a wave over its failure budget halts the rollout before the next, an abort
 * cancels the wave deploying and starts no other, and Updates that cannot apply are refused.
 */
let env: TestWorkflowEnvironment;
beforeAll(async () => {
  env = await startTestEnvironment();
}, 120_000);
afterAll(() => env?.teardown());

const WAVES = [['east-1'], ['east-2'], ['west-1']];

function plan(approval: number[] = [], waves = WAVES): RolloutPlan {
  return {
    image: 'app',
    version: '1.0.0',
    channel: 'stable',
    channelBefore: '0.9.0',
    waves: waves.map((sddcs, k) => ({ name: sddcs.join(','), sddcs, approval: approval.includes(k + 1), gate: {} })),
  };
}

interface Trace {
  /** The SDDCs whose channel item the catalog says the rollout moved. */
  moved?: string[];
  rows: DeployResultRow[];
  downloads: string[];
  pointed: Array<{ version: string; rollback?: boolean }>;
}

function controlOf(trace: Trace, agentQueue: string, rolloutPlan: RolloutPlan): Partial<Activities> {
  const names = rolloutPlan.waves.flatMap((w) => w.sddcs);
  return {
    ...deployActivities(trace.rows, agentQueue, names, 1),
    planFleet: async (input) => fleetPlanOf(deployPlan(agentQueue, input.sddcs === 'all' ? names : input.sddcs)),
    planRollout: async () => rolloutPlan,
    channelItemsHolding: async ({ sddcs }) => sddcs.filter((s) => trace.moved?.includes(s)),
    pointChannel: async (input) => {
      trace.pointed.push({ version: input.version, rollback: input.rollback });
      return { version: input.version, previous: [] };
    },
  };
}

const input: RolloutInput = { image: 'app', version: '1.0.0', channel: 'stable', waves: [{ sddcs: ['east-1'] }], by: 'ops' };

/** Runs a rollout with these mocks; `steer` gets its handle while it runs. */
async function rollout<T>(
  rolloutPlan: RolloutPlan,
  download: (i: DownloadInput) => Promise<unknown>,
  steer: (h: WorkflowHandle, trace: Trace) => Promise<T>,
): Promise<{ trace: Trace; outcome: unknown; steered: T }> {
  const trace: Trace = { rows: [], downloads: [], pointed: [] };
  const agentQueue = `sddc-${randomUUID()}`;
  const agent = {
    taskQueue: agentQueue,
    activities: {
      downloadImage: async (i: DownloadInput) => {
        trace.downloads.push(i.sddc);
        return download(i);
      },
      // A cancel that finds no download running has the agent remove what one may have left.
      discardDownload: async () => ({ removed: false }),
    },
  };
  const { outcome, steered } = await runWorker(
    env,
    controlOf(trace, agentQueue, rolloutPlan),
    async (taskQueue) => {
      const handle = await env.client.workflow.start('Rollout', {
        args: [input],
        taskQueue,
        workflowId: `rollout:${randomUUID()}`,
      });
      const steered = await steer(handle, trace);
      const outcome = await handle.result().catch((e: unknown) => e);
      return { outcome, steered };
    },
    agent as never,
  );
  return { trace, outcome, steered };
}

async function until(handle: WorkflowHandle, ok: (p: RolloutProgress) => boolean): Promise<RolloutProgress> {
  for (;;) {
    const p = await handle.query<RolloutProgress>('rollout');
    if (ok(p)) return p;
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('Rollout', () => {
  it('runs the waves in order, holds wave 2 for its approval, and points the channel once all passed', async () => {
    const { trace, outcome, steered } = await rollout(plan([2]), deployedDownload, async (h, t) => {
      const waiting = await until(h, (p) => p.waves[1]?.state === 'awaiting-approval');
      const before = [...t.downloads];
      const approved = await h.executeUpdate<RolloutProgress, [object]>('approve', { args: [{ by: 'alice' }] });
      return { waiting, before, approved };
    });
    expect(steered.before).toEqual(['east-1']);
    expect(steered.waiting.waitingFor).toMatch(/^approval of wave 2: vmhub rollout approve rollout:/);
    expect(steered.approved.waves[1].approvedBy).toBe('alice');
    const done = outcome as RolloutProgress;
    expect(done.state).toBe('completed');
    expect(done.waves.map((w) => w.state)).toEqual(['passed', 'passed', 'passed']);
    expect(done.actions).toEqual([expect.objectContaining({ action: 'approve', by: 'alice', wave: 2 })]);
    expect(trace.downloads).toEqual(['east-1', 'east-2', 'west-1']);
    expect(trace.pointed).toEqual([{ version: '1.0.0' }]);
  });

  it('halts before wave 2 when wave 1 fails over its budget, and leaves the channel where it was', async () => {
    const failing = async (i: DownloadInput) => {
      if (i.sddc === 'east-1') throw ApplicationFailure.nonRetryable('no room', 'InsufficientSpace');
      return deployedDownload();
    };
    const { trace, outcome } = await rollout(plan(), failing, async () => undefined);
    expect(outcome).toBeInstanceOf(WorkflowFailedError);
    const failure = (outcome as WorkflowFailedError).cause as ApplicationFailure;
    expect(failure.type).toBe('RolloutHalted');
    expect(failure.message).toMatch(
      /^wave 1 \(east-1\) halted the rollout: 1 of 1 SDDC failed \(budget 0\): east-1: .*InsufficientSpace/,
    );
    const progress = failure.details![0] as RolloutProgress;
    expect(progress.waves.map((w) => w.state)).toEqual(['halted', 'not-started', 'not-started']);
    expect(trace.downloads).toEqual(['east-1']);
    expect(trace.pointed).toEqual([]);
  });

  it('a halt puts the channel items the rollout moved back on the version the channel points at', async () => {
    const rolloutPlan = plan([], [['east-1'], ['east-2', 'west-1'], ['north-1']]);
    const failing = async (i: DownloadInput) => {
      if (i.sddc === 'west-1') throw ApplicationFailure.nonRetryable('no room', 'InsufficientSpace');
      return deployedDownload();
    };
    const { trace, outcome } = await rollout(rolloutPlan, failing, async (_h, t) => void (t.moved = ['east-1', 'east-2']));
    const failure = (outcome as WorkflowFailedError).cause as ApplicationFailure;
    expect(failure.type).toBe('RolloutHalted');
    expect(failure.message).toMatch(
      /^wave 2 \(east-2,west-1\) halted the rollout: .*; the stable item of 2 SDDCs put back on 0\.9\.0$/,
    );
    const progress = failure.details![0] as RolloutProgress;
    expect(progress.waves.map((w) => [w.name, w.state])).toEqual([
      ['east-1', 'rolled-back'],
      ['east-2,west-1', 'halted'],
      ['north-1', 'not-started'],
      ['put back', 'passed'],
    ]);
    expect(progress.waves[3].deployWorkflowId).toMatch(/^rollout:.*:[0-9a-f-]{8}:put-back$/);
    expect([...trace.downloads].sort()).toEqual(['east-1', 'east-1', 'east-2', 'east-2', 'west-1']);
    expect(trace.downloads.filter((s) => s === 'east-1')).toHaveLength(2);
    expect(trace.pointed).toEqual([]);
  });

  it('carries on past a failure within the budget', async () => {
    const rolloutPlan = plan([], [['east-1', 'east-2'], ['west-1']]);
    rolloutPlan.waves[0].gate = { maxFailures: 1 };
    const failing = async (i: DownloadInput) => {
      if (i.sddc === 'east-2') throw ApplicationFailure.nonRetryable('no room', 'InsufficientSpace');
      return deployedDownload();
    };
    const { outcome, trace } = await rollout(rolloutPlan, failing, async () => undefined);
    expect((outcome as RolloutProgress).state).toBe('completed');
    expect((outcome as RolloutProgress).waves[0]).toMatchObject({ state: 'passed', counts: { deployed: 1, failed: 1 } });
    expect(trace.downloads.sort()).toEqual(['east-1', 'east-2', 'west-1']);
  });

  it('an abort cancels the wave deploying, starts no later wave, and fails RolloutAborted naming who', async () => {
    const hanging = async () => {
      const ctx = Context.current();
      for (;;) {
        ctx.heartbeat();
        await ctx.sleep(50);
      }
    };
    const { trace, outcome } = await rollout(plan(), hanging, async (h) => {
      await until(h, (p) => p.waves[0]?.state === 'deploying');
      await new Promise((r) => setTimeout(r, 300));
      return h.executeUpdate('abort', { args: [{ by: 'bob', reason: 'bad canary' }] });
    });
    const failure = (outcome as WorkflowFailedError).cause as ApplicationFailure;
    expect(failure.type).toBe('RolloutAborted');
    expect(failure.message).toBe('rollout aborted by bob: bad canary');
    const progress = failure.details![0] as RolloutProgress;
    expect(progress.waves.map((w) => w.state)).toEqual(['aborted', 'not-started', 'not-started']);
    expect(trace.downloads).toEqual(['east-1']);
    expect(trace.rows).toEqual([expect.objectContaining({ sddc: 'east-1', status: 'failed' })]);
    expect(trace.pointed).toEqual([]);
  });

  it('refuses an approval no wave waits for, a resume without a pause, and a nameless operator', async () => {
    const { steered } = await rollout(plan([3]), deployedDownload, async (h) => {
      await until(h, (p) => p.waves[2]?.state === 'awaiting-approval');
      const refused = async (name: string, args: object) =>
        h.executeUpdate(name, { args: [args] }).then(
          () => 'accepted',
          (e: unknown) => (e instanceof WorkflowUpdateFailedError ? (e.cause as Error).message : String(e)),
        );
      const answers = [
        await refused('approve', { by: 'alice', wave: 1 }),
        await refused('resume', { by: 'alice' }),
        await refused('pause', { by: '' }),
        await refused('approve', { by: 'alice', wave: 7 }),
      ];
      await h.executeUpdate('approve', { args: [{ by: 'alice' }] });
      return answers;
    });
    expect(steered).toEqual([
      'wave 1 needs no approval',
      'the rollout is not paused',
      'say who you are: by must be a name of 1 to 80 characters',
      'the rollout has no wave 7',
    ]);
  });
});

describe('Rollout at fleet scale', () => {
  it('1,000 SDDCs in 5 waves: the rollout holds a few events per wave, and no run passes 5,000', async () => {
    const names = Array.from({ length: 1000 }, (_, i) => `tiny-${String(i).padStart(4, '0')}`);
    const waves = Array.from({ length: 5 }, (_, k) => names.slice(k * 200, (k + 1) * 200));
    const rolloutPlan = plan([], waves);
    // Every SDDC is too small for the image: each row is recorded, and no agent is needed.
    for (const w of rolloutPlan.waves) w.gate = { maxFailurePercent: 100 };
    const trace: Trace = { rows: [], downloads: [], pointed: [] };
    const agentQueue = `sddc-${randomUUID()}`;
    const tooSmall = (sddcs: string[]) => {
      const p = deployPlan(agentQueue, sddcs);
      return { ...p, targets: p.targets.map((t) => ({ ...t, shortfall: 'needs 4 CPUs, has 2' })) };
    };
    const control = {
      ...controlOf(trace, agentQueue, rolloutPlan),
      planDeployment: async (input: { sddcs: string[] | 'all' }) => tooSmall(input.sddcs === 'all' ? names : input.sddcs),
    };
    const workflowId = `rollout:${randomUUID()}`;
    const { done, counts } = await runWorker(env, control, async (taskQueue) => {
      const handle = env.client.workflow.start('Rollout', { args: [input], taskQueue, workflowId });
      const done = (await (await handle).result()) as RolloutProgress;
      const events = async (id: string) => (await env.client.workflow.getHandle(id).fetchHistory()).events!.length;
      const waveRuns = done.waves.map((w) => w.deployWorkflowId!);
      const batches = await Promise.all(
        waveRuns.map(async (id) =>
          (await env.client.workflow.getHandle(id).query<FleetProgress>('progress')).batches.map((b) => b.workflowId),
        ),
      );
      return {
        done,
        counts: {
          rollout: await events(workflowId),
          waves: await Promise.all(waveRuns.map(events)),
          batches: await Promise.all(batches.flat().map(events)),
        },
      };
    });
    expect(done.state).toBe('completed');
    expect(done.waves.map((w) => w.counts)).toEqual(waves.map(() => ({ skipped: 200 })));
    expect(done.waves.every((w) => w.failed.length === WAVE_ROWS_KEPT)).toBe(true);
    expect(trace.rows).toHaveLength(1000);
    expect(counts.rollout).toBeLessThan(100);
    expect(counts.batches).toHaveLength(10);
    for (const n of [...counts.waves, ...counts.batches]) expect(n).toBeLessThan(5000);
  }, 300_000);
});
