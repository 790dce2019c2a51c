import { randomUUID } from 'node:crypto';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Activities } from '../../src/activities';
import type { RetentionResult, RetireResult, VerifyResult } from '../../src/lifecycle/input';
import { retireAgent, retireControl, retirePlan, retireRef, verifyControl } from '../harness/lifecycle-mocks';
import { runWorker, startTestEnvironment } from '../harness/mock-activities';

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
  const agentQueue = `sddc-${randomUUID()}`;
  return runWorker(
    env,
    { ...retireControl(log, agentQueue, beginRetire), ...overrides },
    (taskQueue) =>
      env.client.workflow.execute('RetireImage', { args: [ref], taskQueue, workflowId: randomUUID() }).then(
        (r) => r as RetireResult,
        (e: unknown) => e,
      ),
    { taskQueue: agentQueue, activities: retireAgent(log) },
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

  it('an SDDC whose agent does not poll fails the retire with NoAgent: no blob goes, no tombstone', async () => {
    const log: string[] = [];
    const result = await retire(log, async () => retirePlan(''), { agentsPolling: async () => 0 });
    expect(result).toBeInstanceOf(WorkflowFailedError);
    expect(((result as WorkflowFailedError).cause as ApplicationFailure).type).toBe('NoAgent');
    expect(log.filter((l) => l.startsWith('blob') || l === 'tombstone')).toEqual([]);
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
      checkReplica: async ({ version, location }) => {
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
