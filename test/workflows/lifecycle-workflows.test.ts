import { randomUUID } from 'node:crypto';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Activities } from '../../src/activities';
import type { AgentActivities } from '../../src/activities/agent';
import type { AgentLifecycleActivities } from '../../src/activities/lifecycle';
import type { RetentionResult, RetireResult, VerifyResult } from '../../src/shared/lifecycle-input';
import { retireAgent, retireControl, retirePlan, retireRef, verifyControl } from '../harness/lifecycle-mocks';
import { runWorker, startTestEnvironment, transferUntilCancelled } from '../harness/mock-activities';

/** Waits for `done`, failing with what was awaited after 60 s rather than hanging the test. */
async function until(what: string, done: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * RetireImage, VerifyReplicas and ApplyRetention on the time-skipping test server with mocked
 * activities: the order of the steps, the typed failures, and the bounded history.
 */
let env: TestWorkflowEnvironment;
beforeAll(async () => {
  env = await startTestEnvironment();
}, 120_000);
afterAll(() => env?.teardown());

const ref = retireRef;

/** Runs a retire with these control activities and a mocked agent serving every SDDC; every call is logged. */
async function retire(log: string[], beginRetire: Activities['beginRetire'], overrides: Partial<Activities> = {}) {
  return retireWith(log, beginRetire, overrides, retireAgent(log));
}

async function retireWith(
  log: string[],
  beginRetire: Activities['beginRetire'],
  overrides: Partial<Activities>,
  agent: Partial<AgentActivities>,
  agentQueue = `sddc-${randomUUID()}`,
) {
  return runWorker(
    env,
    { ...retireControl(log, agentQueue, beginRetire), ...overrides },
    (taskQueue) =>
      env.client.workflow.execute('RetireImage', { args: [ref], taskQueue, workflowId: randomUUID() }).then(
        (r) => r as RetireResult,
        (e: unknown) => e,
      ),
    { taskQueue: agentQueue, activities: agent },
  );
}

describe('RetireImage', () => {
  it('removes every SDDC copy before any blob, and leaves the tombstone last', async () => {
    const log: string[] = [];
    const result = await retire(log, async () => retirePlan(''));
    expect(result).toEqual({
      ...ref,
      status: 'retired',
      sddcs: [
        { sddc: 'dir-1', files: ['/ds/dir-1/app-1.0.0.iso'], libraryItem: null },
        { sddc: 'lib-1', files: ['/ds/lib-1/app-1.0.0.iso'], libraryItem: 'item-1' },
      ],
      blobsRemoved: ['east-primary', 'west-replica'],
    });
    const firstBlob = log.findIndex((l) => l.startsWith('blob'));
    expect(log.slice(firstBlob + 2)).toEqual(['tombstone']);
    expect(log.slice(1, firstBlob).sort()).toEqual([
      'file dir-1',
      'file lib-1',
      'item lib-1',
      'recorded dir-1',
      'recorded lib-1',
    ]);
    expect(log.indexOf('item lib-1')).toBeGreaterThan(log.indexOf('file lib-1'));
  });

  it('a retired version ends at once with nothing to do', async () => {
    const log: string[] = [];
    const result = await retire(log, async () => ({ state: 'retired' }));
    expect(result).toEqual({ ...ref, status: 'already-retired', sddcs: [], blobsRemoved: [] });
    expect(log).toEqual(['begin']);
  });

  /** The RetireIncomplete a retire ended with, and what it names. */
  function incomplete(result: unknown) {
    expect(result).toBeInstanceOf(WorkflowFailedError);
    const failure = (result as WorkflowFailedError).cause as ApplicationFailure;
    expect(failure.type).toBe('RetireIncomplete');
    expect(failure.nonRetryable).toBe(true);
    return { message: failure.message, failed: failure.details?.[0] };
  }

  it('an SDDC whose agent does not poll fails the retire with RetireIncomplete naming it: the other SDDC is done, no blob goes, no tombstone', async () => {
    const log: string[] = [];
    // lib-1's agent was there when the retire began, and is gone by the time its copy is removed.
    const agentQueue = `sddc-${randomUUID()}`;
    const plan = retirePlan(agentQueue);
    plan.sddcs[1] = { ...plan.sddcs[1], taskQueue: 'sddc-gone' };
    const result = await retireWith(
      log,
      async () => plan,
      { beginRetire: async () => plan, agentsPolling: async ({ taskQueue }) => (taskQueue === 'sddc-gone' ? 0 : 1) },
      retireAgent(log),
      agentQueue,
    );
    const { message, failed } = incomplete(result);
    expect(failed).toEqual([{ sddc: 'lib-1', reason: expect.stringMatching(/^NoAgent: /) }]);
    expect(message).toContain('1 SDDC failed (lib-1: NoAgent');
    expect(log).toContain('recorded dir-1');
    expect(log.filter((l) => l.startsWith('blob') || l === 'tombstone' || l === 'abandon')).toEqual([]);
  });

  it('one SDDC failing does not stop the other: it is removed and recorded, and one RetireIncomplete names the failed one', async () => {
    const log: string[] = [];
    const agent = retireAgent(log) as Partial<AgentLifecycleActivities>;
    const failing: Partial<AgentLifecycleActivities> = {
      ...agent,
      removeDeployedCopy: async (copy) => {
        if (copy.sddc === 'dir-1') {
          log.push('file dir-1 failed');
          throw ApplicationFailure.nonRetryable('/ds/dir-1/app is a link', 'InvalidInput');
        }
        return agent.removeDeployedCopy!(copy);
      },
    };
    const result = await retireWith(log, async () => retirePlan(''), {}, failing as Partial<AgentActivities>);
    const { failed } = incomplete(result);
    expect(failed).toEqual([{ sddc: 'dir-1', reason: 'InvalidInput: /ds/dir-1/app is a link' }]);
    expect(log).toEqual(expect.arrayContaining(['file lib-1', 'item lib-1', 'recorded lib-1']));
    expect(log).not.toContain('recorded dir-1');
    expect(log.filter((l) => l.startsWith('blob') || l === 'tombstone')).toEqual([]);
  });

  it('a storage location that fails leaves the others removed, and the run ends with one RetireIncomplete naming it', async () => {
    const log: string[] = [];
    const result = await retire(log, async () => retirePlan(''), {
      removeBlob: async ({ location }) => {
        log.push(`blob ${location}`);
        if (location === 'east-primary') throw ApplicationFailure.nonRetryable('container is gone', 'StorageMismatch');
        return { removed: true };
      },
    });
    const { message, failed } = incomplete(result);
    expect(failed).toEqual([{ location: 'east-primary', reason: 'StorageMismatch: container is gone' }]);
    expect(message).toContain('1 storage location failed (east-primary: StorageMismatch: container is gone)');
    expect(log).toEqual(expect.arrayContaining(['blob east-primary', 'blob west-replica', 'recorded dir-1', 'recorded lib-1']));
    expect(log).not.toContain('tombstone');
  });

  /**
   * Starts a retire of one SDDC's copy (`previous`: what the version was before the claim), and cancels
   * it once `step` is running: beginRetire is let end after the cancel, agentsPolling ends by it.
   */
  async function cancelDuring(log: string[], step: 'beginRetire' | 'agentsPolling', previous: 'available' | 'retiring') {
    let entered!: () => void;
    const inStep = new Promise<void>((resolve) => (entered = resolve));
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const held = async <T>(value: T): Promise<T> => {
      entered();
      await gate;
      return value;
    };
    const agentQueue = `sddc-${randomUUID()}`;
    const control = retireControl(log, agentQueue, async () => retirePlan(''));
    const begin = control.beginRetire!;
    control.beginRetire = async (input) => {
      const p = await begin(input);
      const plan = p.state === 'retiring' ? { ...p, previous, sddcs: p.sddcs.slice(0, 1) } : p;
      return step === 'beginRetire' ? held(plan) : plan;
    };
    if (step === 'agentsPolling') {
      // It runs until the cancel reaches it: a check still answering when the cancel lands is no removal either.
      const polling = transferUntilCancelled(log, 'polling');
      control.agentsPolling = () => (entered(), polling());
      release();
    }
    return runWorker(
      env,
      control,
      async (taskQueue) => {
        const handle = await env.client.workflow.start('RetireImage', { args: [ref], taskQueue, workflowId: randomUUID() });
        await inStep;
        await handle.cancel();
        release();
        return handle.result().catch((e: unknown) => e);
      },
      { taskQueue: agentQueue, activities: retireAgent(log) },
    );
  }

  it.each(['beginRetire', 'agentsPolling'] as const)(
    'a cancel during %s, before any removal, gives the claim back and removes nothing',
    async (step) => {
      const log: string[] = [];
      const result = await cancelDuring(log, step, 'available');
      expect(result).toBeInstanceOf(WorkflowFailedError);
      expect((result as WorkflowFailedError).cause).toBeInstanceOf(CancelledFailure);
      expect(log.filter((l) => !l.startsWith('polling'))).toEqual(['begin', 'abandon']);
    },
  );

  it('a cancel of a retire that took over from another run keeps the claim: that run may have removed copies', async () => {
    const log: string[] = [];
    const result = await cancelDuring(log, 'agentsPolling', 'retiring');
    expect((result as WorkflowFailedError).cause).toBeInstanceOf(CancelledFailure);
    expect(log).toEqual(['begin', 'polling started', 'polling stopped']);
  });

  it('a cancel while removing whose removal resolves as a failure, not a cancel, still ends Cancelled; the claim stays, the removals done are recorded', async () => {
    const log: string[] = [];
    let entered!: () => void;
    const inRemoval = new Promise<void>((resolve) => (entered = resolve));
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const agent = retireAgent(log) as Partial<AgentLifecycleActivities>;
    const hung: Partial<AgentLifecycleActivities> = {
      ...agent,
      // An agent that never beats hears no cancel: its removal ends as a timeout would, after the cancel.
      removeDeployedCopy: async (copy) => {
        if (copy.sddc !== 'lib-1') return agent.removeDeployedCopy!(copy);
        entered();
        await gate;
        throw ApplicationFailure.nonRetryable('activity Heartbeat timeout', 'TimeoutLike');
      },
    };
    const agentQueue = `sddc-${randomUUID()}`;
    const result = await runWorker(
      env,
      retireControl(log, agentQueue, async () => retirePlan('')),
      async (taskQueue) => {
        const workflowId = randomUUID();
        const handle = await env.client.workflow.start('RetireImage', { args: [ref], taskQueue, workflowId });
        await inRemoval;
        // Cancelled once the other SDDC's removal has completed: only the hung one is still pending in the batch.
        // A batch is named by the retire's workflow ID, its owner (the first run) and its number.
        const batch = env.client.workflow.getHandle(`${workflowId}:${handle.firstExecutionRunId}:1`);
        const pending = async () => (await batch.describe()).raw.pendingActivities ?? [];
        await until('only the hung removal pending', async () => log.includes('file dir-1') && (await pending()).length === 1);
        await handle.cancel();
        // The hung removal ends only once the cancel has reached it in the batch, as a dead agent's would time out then.
        const cancelRequested = temporal.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_CANCEL_REQUESTED;
        await until('the cancel to reach the hung removal', async () => (await pending())[0]?.state === cancelRequested);
        release();
        return handle.result().catch((e: unknown) => e);
      },
      { taskQueue: agentQueue, activities: hung as Partial<AgentActivities> },
    );
    expect(result).toBeInstanceOf(WorkflowFailedError);
    expect((result as WorkflowFailedError).cause).toBeInstanceOf(CancelledFailure);
    expect(log).toContain('recorded dir-1');
    expect(log).not.toContain('recorded lib-1');
    expect(log.filter((l) => l.startsWith('blob') || l === 'tombstone' || l === 'abandon')).toEqual([]);
  });

  it('a running deploy fails the retire with DeployRunning, once, and removes nothing', async () => {
    const log: string[] = [];
    const result = await retire(log, async () => {
      throw ApplicationFailure.nonRetryable('app@1.0.0 is being deployed by deploy:app:1.0.0:x', 'DeployRunning');
    });
    expect(result).toBeInstanceOf(WorkflowFailedError);
    expect(((result as WorkflowFailedError).cause as ApplicationFailure).type).toBe('DeployRunning');
    expect(log).toEqual(['begin']);
  });
});

describe('VerifyReplicas', () => {
  it('replicates again what differs, and continues as new after each page', async () => {
    const replicated: string[] = [];
    const pages: Array<string | undefined> = [];
    const control = verifyControl(pages, replicated);
    const result = await runWorker(env, control, (taskQueue) =>
      env.client.workflow.execute('VerifyReplicas', { args: [{}], taskQueue, workflowId: randomUUID() }),
    );
    expect(pages).toEqual([undefined, 'app@1.0.0']);
    expect(replicated).toEqual(['2.0.0 west-replica']);
    expect(result as VerifyResult).toEqual({
      versionsChecked: 2,
      replicasChecked: 2,
      findingsTotal: 1,
      findings: [
        { image: 'app', version: '2.0.0', location: 'west-replica', reason: 'committed block 1 differs', repaired: true },
      ],
    });
  });

  it('a replica that cannot be checked or replicated again is reported, and the others are still checked', async () => {
    const control: Partial<Activities> = {
      versionsToVerify: async () => ({
        versions: ['1.0.0', '2.0.0', '3.0.0', '4.0.0'].map((version) => ({ image: 'app', version })),
        replicas: ['west-replica'],
      }),
      verifyReplicaContent: async ({ version, location }) => {
        if (version === '3.0.0')
          throw ApplicationFailure.nonRetryable('the primary blob of app@3.0.0 is missing', 'StorageMismatch');
        // Retired since the page was listed.
        if (version === '4.0.0') return { location, status: 'gone' };
        return { location, status: 'stale', reason: 'blob is missing' };
      },
      replicateImage: async ({ version, location }) => {
        if (version === '1.0.0') throw ApplicationFailure.nonRetryable('primary blob is 0 bytes', 'StorageMismatch');
        return { location, status: 'verified' };
      },
    };
    const result = (await runWorker(env, control, (taskQueue) =>
      env.client.workflow.execute('VerifyReplicas', { args: [{}], taskQueue, workflowId: randomUUID() }),
    )) as VerifyResult;
    expect(result).toMatchObject({ versionsChecked: 4, replicasChecked: 2, findingsTotal: 3 });
    expect(result.findings.map((f) => [f.version, f.repaired, f.reason])).toEqual([
      ['1.0.0', false, 'blob is missing; replicating again failed: primary blob is 0 bytes'],
      ['2.0.0', true, 'blob is missing'],
      ['3.0.0', false, 'not checked: the primary blob of app@3.0.0 is missing'],
    ]);
  });
});

describe('ApplyRetention', () => {
  it('retires each planned version by a RetireImage child, and reports the ones that failed', async () => {
    const control: Partial<Activities> = {
      retentionPlan: async () => [
        { image: 'app', version: '1.0.0' },
        { image: 'app', version: '1.1.0' },
      ],
      beginRetire: async ({ version }) => {
        if (version === '1.1.0') throw ApplicationFailure.nonRetryable('app@1.1.0 is being deployed', 'DeployRunning');
        return { state: 'retired' };
      },
    };
    const result = await runWorker(env, control, (taskQueue) =>
      env.client.workflow.execute('ApplyRetention', { args: [{}], taskQueue, workflowId: randomUUID() }),
    );
    expect(result as RetentionResult).toEqual({
      retired: ['app@1.0.0'],
      failed: [{ ref: 'app@1.1.0', reason: 'app@1.1.0 is being deployed' }],
    });
  });
});
