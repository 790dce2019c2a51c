import {
  ActivityCancellationType,
  ActivityFailure,
  ApplicationFailure,
  patched,
  proxyActivities,
  TimeoutFailure,
  workflowInfo,
  type ActivityInterfaceFor,
  type ActivityOptions,
} from '@temporalio/workflow';
import { TimeoutType } from '@temporalio/common';
import type { Activities } from '../activities';
import { NON_RETRYABLE_ERROR_TYPES } from '../shared/errors';
import { transferTaskQueueOf } from '../shared/task-queues';

/**
 * How vmhub's activities are retried, and the one place that decides which control-plane queue each
 * runs on. Transient faults (a storage, catalog or Temporal outage, a killed worker) are retried with
 * backoff and resume where they were; the typed errors never are. Retries are capped by attempts, and a
 * schedule-to-close bound ends every activity even when no worker ever polls its queue.
 */

/**
 * The long transfers: they run on the transfer task queue, every other control-plane activity on the
 * workflow's own. Workflows reach them only through `transfer`, and `control` does not offer them.
 */
export const TRANSFER_ACTIVITIES = [
  'stageBlockRange',
  'inspectSource',
  'commitBlocks',
  'replicateImage',
  'verifyReplicaContent',
] as const;

export type TransferActivity = (typeof TRANSFER_ACTIVITIES)[number];
export type ControlActivities = Omit<Activities, TransferActivity>;
export type TransferActivities = Pick<Activities, TransferActivity>;

/** Runs that began before the schedule-to-close bounds replay with the options they were scheduled with. */
export const BACKSTOPS_PATCH = 'activity-backstops';

/**
 * Catalog and bookkeeping steps: short, and without heartbeats, so their start-to-close timeout is what
 * notices a dead worker. 30 attempts, backing off to a minute, ride out about 25 minutes of outage. A
 * cancelled run waits for them to stop, so cleanup never races a step still running.
 */
export const BOOKKEEPING: ActivityOptions = {
  startToCloseTimeout: '1 minute',
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  retry: {
    initialInterval: '1 second',
    backoffCoefficient: 2,
    maximumInterval: '1 minute',
    maximumAttempts: 30,
    nonRetryableErrorTypes: NON_RETRYABLE_ERROR_TYPES,
  },
};

/** 30 attempts of at most a minute with their backoff take under an hour: the rest is slack for a busy queue. */
export const BOOKKEEPING_BOUND = '2 hours';

/**
 * Long transfers, on the transfer task queue: a heartbeat timeout notices a dead worker within 15 s and the retry resumes from the
 * last heartbeat; 40 attempts backing off to 30 s ride out about 18 minutes of outage. A cancel reaches
 * them at their next heartbeat, and the run waits until they have stopped.
 */
export const TRANSFER: ActivityOptions = {
  // Only a backstop: the heartbeat notices a dead worker. A pass over a terabyte image may take a day.
  startToCloseTimeout: '7 days',
  heartbeatTimeout: '15 seconds',
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  retry: {
    initialInterval: '1 second',
    backoffCoefficient: 2,
    maximumInterval: '30 seconds',
    maximumAttempts: 40,
    nonRetryableErrorTypes: NON_RETRYABLE_ERROR_TYPES,
  },
};

/**
 * Every transfer, waiting in the queue and all its attempts included, ends within this. The longest is
 * the one pass that hashes and inspects a whole image, which starts again if retried: a 1 TiB image read
 * at 10 MB/s takes about 30 hours, so three days hold that pass, a restart near its end and the retries'
 * 18 minutes. Staging and replication resume from their last heartbeat and take far less per activity.
 */
export const TRANSFER_BOUND = '3 days';

/** Control-plane bookkeeping, on the workflow's own task queue. */
export const control: ActivityInterfaceFor<ControlActivities> = lazily(() =>
  proxyActivities<ControlActivities>(
    patched(BACKSTOPS_PATCH) ? { ...BOOKKEEPING, scheduleToCloseTimeout: BOOKKEEPING_BOUND } : BOOKKEEPING,
  ),
);

/** Control-plane activities that need options of their own (a longer run, a heartbeat), bounded like the rest. */
export function controlWith(options: Partial<ActivityOptions>): ActivityInterfaceFor<ControlActivities> {
  return proxyActivities<ControlActivities>({ ...BOOKKEEPING, scheduleToCloseTimeout: BOOKKEEPING_BOUND, ...options });
}

/** The long transfers, on the transfer task queue beside the workflow's. */
export const transfer: ActivityInterfaceFor<TransferActivities> = lazily(() =>
  transfers(transferTaskQueueOf(workflowInfo().taskQueue)),
);

/** The transfers of runs that began before transfers had a task queue of their own: the workflow's queue. */
export const transferOnWorkflowQueue: ActivityInterfaceFor<TransferActivities> = lazily(() =>
  transfers(workflowInfo().taskQueue),
);

function transfers(taskQueue: string): ActivityInterfaceFor<TransferActivities> {
  if (!patched(BACKSTOPS_PATCH)) return proxyActivities<TransferActivities>({ ...TRANSFER, taskQueue });
  const bounded = proxyActivities<TransferActivities>({
    ...TRANSFER,
    taskQueue,
    startToCloseTimeout: TRANSFER_BOUND,
    scheduleToCloseTimeout: TRANSFER_BOUND,
  });
  const named = {} as Record<TransferActivity, unknown>;
  for (const name of TRANSFER_ACTIVITIES) {
    const activity = bounded[name] as unknown as {
      (...args: unknown[]): Promise<unknown>;
      executeWithOptions(options: unknown, args: unknown[]): Promise<unknown>;
    };
    const call = (...args: unknown[]) =>
      activity(...args).catch((err: unknown) => {
        throw noTransferWorker(err, taskQueue);
      });
    call.executeWithOptions = (options: unknown, args: unknown[]) =>
      activity.executeWithOptions(options, args).catch((err: unknown) => {
        throw noTransferWorker(err, taskQueue);
      });
    named[name] = call;
  }
  return named as ActivityInterfaceFor<TransferActivities>;
}

/**
 * A transfer that no worker started before its bound means nobody polls the transfer queue: that is what
 * the operator must fix, so the run says so by type rather than as a bare timeout. The server times out
 * a task never taken as schedule-to-start (which defaults to the schedule-to-close bound); a
 * schedule-to-close with no attempt's failure, heartbeat or worker behind it means the same. Any other
 * failure is returned as it is.
 */
export function noTransferWorker(err: unknown, taskQueue: string): unknown {
  if (!(err instanceof ActivityFailure) || !(err.cause instanceof TimeoutFailure)) return err;
  const timeout = err.cause;
  const neverTaken =
    timeout.timeoutType === TimeoutType.SCHEDULE_TO_START ||
    (timeout.timeoutType === TimeoutType.SCHEDULE_TO_CLOSE &&
      timeout.cause === undefined &&
      timeout.lastHeartbeatDetails === undefined &&
      !err.identity);
  if (!neverTaken) return err;
  return ApplicationFailure.nonRetryable(
    `${err.activityType} was not started within ${TRANSFER_BOUND}: no worker polled task queue ${taskQueue}; start a transfer worker (\`npm run worker\`, or \`npm run worker -- --only transfer\`)`,
    'NoTransferWorker',
  );
}

/** An object whose every member is taken, when called, from the proxy make() returns then: options can depend on patched(), which only a running workflow can call. */
function lazily<T extends object>(make: () => T): T {
  return new Proxy({} as T, {
    get: (_, name) => (make() as Record<string | symbol, unknown>)[name],
  });
}
