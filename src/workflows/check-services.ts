import { ApplicationFailure, patched, proxyActivities, type ActivityOptions } from '@temporalio/workflow';
import type { createHealthActivities, HealthReport } from '../activities/health';
import { NON_RETRYABLE_ERROR_TYPES } from '../shared/errors';
import { BACKSTOPS_PATCH } from './activity-options';

const HEALTH: ActivityOptions = {
  startToCloseTimeout: '1 minute',
  retry: { maximumAttempts: 3, nonRetryableErrorTypes: NON_RETRYABLE_ERROR_TYPES },
};

/** Three attempts of a minute; the bound also ends a check that no worker ever picks up. */
function health() {
  const options: ActivityOptions = patched(BACKSTOPS_PATCH) ? { ...HEALTH, scheduleToCloseTimeout: '10 minutes' } : HEALTH;
  return proxyActivities<ReturnType<typeof createHealthActivities>>(options);
}

/** The token names a blob and a catalog key: a short plain word, never a path. */
const TOKEN = /^[A-Za-z0-9_-]{1,64}$/;

/** A round trip through Temporal, every storage location and the catalog. */
export async function CheckServices(token: string): Promise<HealthReport> {
  if (typeof token !== 'string' || !TOKEN.test(token)) {
    throw ApplicationFailure.nonRetryable(`token must be 1 to 64 letters, digits, "-" or "_"`, 'InvalidInput');
  }
  return health().checkServices.executeWithOptions({ summary: 'a round trip through every storage location and the catalog' }, [
    token,
  ]);
}
