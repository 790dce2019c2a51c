import { randomUUID } from 'node:crypto';
import type { WorkflowHandle } from '@temporalio/client';
import { ActivityFailure, ApplicationFailure, RetryState, TimeoutFailure, TimeoutType } from '@temporalio/common';
import { msToNumber } from '@temporalio/common/lib/time';
import type { temporal } from '@temporalio/proto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { transferTaskQueueOf } from '../../src/shared/task-queues';
import { BOOKKEEPING_BOUND, noTransferWorker, TRANSFER_ACTIVITIES, TRANSFER_BOUND } from '../../src/workflows/activity-options';
import { verifyControl } from '../harness/lifecycle-mocks';
import { publishActivities, runWorker, startTestEnvironment } from '../harness/mock-activities';

/**
 * Which control-plane queue each activity runs on is decided in one place (TRANSFER_ACTIVITIES): the
 * histories the workflows write schedule every transfer on the transfer queue and nothing else there;
 * every activity carries a schedule-to-close bound; and a transfer no worker took fails the run typed.
 */
let env: TestWorkflowEnvironment;
beforeAll(async () => {
  env = await startTestEnvironment();
}, 120_000);
afterAll(() => env?.teardown());

const publishInput = { source: 'app.ova', image: 'app', version: '1.0.0' };
const transfers = new Set<string>(TRANSFER_ACTIVITIES);

type Event = temporal.api.history.v1.IHistoryEvent;

async function eventsOf(handle: WorkflowHandle): Promise<Event[]> {
  return (await handle.fetchHistory()).events ?? [];
}

/** Each scheduled activity as `type on queue`. */
function scheduled(events: Event[]): Array<{ type: string; queue: string }> {
  return events.flatMap((e) => {
    const a = e.activityTaskScheduledEventAttributes;
    return a ? [{ type: a.activityType?.name ?? '', queue: a.taskQueue?.name ?? '' }] : [];
  });
}

function expectOnTheirQueues(events: Event[], taskQueue: string): void {
  for (const { type, queue } of scheduled(events)) {
    expect({ type, queue }).toEqual({ type, queue: transfers.has(type) ? transferTaskQueueOf(taskQueue) : taskQueue });
  }
}

describe('task queues', () => {
  it('a publish with a replica schedules every transfer on the transfer queue and every other step on the control queue', async () => {
    const activities = publishActivities([], {
      replicaLocations: async () => ({ replicas: ['west-replica'] }),
      replicateImage: async ({ location }) => ({ location, status: 'verified' }),
    });
    const { events, taskQueue } = await runWorker(env, activities, async (taskQueue) => {
      const handle = await env.client.workflow.start('PublishImage', {
        args: [publishInput],
        taskQueue,
        workflowId: randomUUID(),
      });
      await handle.result();
      return { events: await eventsOf(handle), taskQueue };
    });
    const types = new Set(scheduled(events).map((s) => s.type));
    // A publish never hashes a replica on its own: VerifyReplicas does (below).
    for (const name of TRANSFER_ACTIVITIES.filter((n) => n !== 'verifyReplicaContent')) expect(types).toContain(name);
    expect(types).toContain('markAvailable');
    expectOnTheirQueues(events, taskQueue);
  });

  it('VerifyReplicas hashes and repairs replicas on the transfer queue', async () => {
    const replicated: string[] = [];
    const { events, taskQueue } = await runWorker(env, verifyControl([], replicated), async (taskQueue) => {
      const handle = await env.client.workflow.start('VerifyReplicas', { args: [{}], taskQueue, workflowId: randomUUID() });
      await handle.result();
      // The repair is on the second page, the run continued as new: the handle follows it.
      return { events: await eventsOf(handle), taskQueue };
    });
    expect(replicated).toEqual(['2.0.0 west-replica']);
    expect(scheduled(events).map((s) => s.type)).toEqual(expect.arrayContaining(['replicateImage', 'verifyReplicaContent']));
    expectOnTheirQueues(events, taskQueue);
  });

  it('bounds every activity a publish schedules: the transfers by TRANSFER_BOUND, the bookkeeping by BOOKKEEPING_BOUND', async () => {
    const { events } = await runWorker(env, publishActivities([]), async (taskQueue) => {
      const handle = await env.client.workflow.start('PublishImage', {
        args: [publishInput],
        taskQueue,
        workflowId: randomUUID(),
      });
      await handle.result();
      return { events: await eventsOf(handle) };
    });
    const bounds = events.flatMap((e) => {
      const a = e.activityTaskScheduledEventAttributes;
      return a ? [{ type: a.activityType?.name ?? '', ms: Number(a.scheduleToCloseTimeout?.seconds ?? 0) * 1000 }] : [];
    });
    expect(bounds.length).toBeGreaterThan(4);
    for (const { type, ms } of bounds) {
      expect({ type, ms }).toEqual({ type, ms: msToNumber(transfers.has(type) ? TRANSFER_BOUND : BOOKKEEPING_BOUND) });
    }
  });
});

describe('a transfer no worker took', () => {
  const queue = 'vm-images-transfer';
  const failure = (timeout: TimeoutFailure, identity?: string) =>
    new ActivityFailure('activity timed out', 'stageBlockRange', '7', RetryState.TIMEOUT, identity, timeout);

  it('is NoTransferWorker, non-retryable, naming the queue and the bound', () => {
    for (const type of [TimeoutType.SCHEDULE_TO_START, TimeoutType.SCHEDULE_TO_CLOSE]) {
      const typed = noTransferWorker(failure(new TimeoutFailure(undefined, undefined, type)), queue);
      expect(typed).toBeInstanceOf(ApplicationFailure);
      expect((typed as ApplicationFailure).type).toBe('NoTransferWorker');
      expect((typed as ApplicationFailure).nonRetryable).toBe(true);
      expect((typed as ApplicationFailure).message).toBe(
        `stageBlockRange was not started within ${TRANSFER_BOUND}: no worker polled task queue ${queue}; start a transfer worker (\`npm run worker\`, or \`npm run worker -- --only transfer\`)`,
      );
    }
  });

  it('is not claimed when a worker had it: a heartbeat, an attempt that failed, or a worker that started it', () => {
    const closed = () => new TimeoutFailure(undefined, undefined, TimeoutType.SCHEDULE_TO_CLOSE);
    const beaten = new TimeoutFailure(undefined, { next: 3 }, TimeoutType.SCHEDULE_TO_CLOSE);
    const failedAttempt = closed();
    // As the server sends it: the last attempt's failure is the timeout's cause.
    Object.defineProperty(failedAttempt, 'cause', { value: new TimeoutFailure(undefined, undefined, TimeoutType.HEARTBEAT) });
    for (const err of [failure(beaten), failure(failedAttempt), failure(closed(), 'worker-1@host')]) {
      expect(noTransferWorker(err, queue)).toBe(err);
    }
    const heartbeat = failure(new TimeoutFailure(undefined, undefined, TimeoutType.HEARTBEAT));
    expect(noTransferWorker(heartbeat, queue)).toBe(heartbeat);
  });
});
