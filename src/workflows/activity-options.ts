import { ActivityCancellationType, type ActivityOptions } from '@temporalio/workflow';
import { NON_RETRYABLE_ERROR_TYPES } from '../shared/errors';

/**
 * How vmhub's activities are retried. Transient faults (a storage, catalog or Temporal outage, a killed
 * worker) are retried with backoff and resume where they were; the typed errors never are. Retries are
 * capped by attempts, so every run ends even when an outage does not.
 */

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

/**
 * Long transfers, on the transfer task queue (see transferTaskQueueOf): a heartbeat timeout notices a dead worker within 15 s and the retry resumes from the
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
