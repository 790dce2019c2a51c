import { ApplicationFailure, proxyActivities } from '@temporalio/workflow';
import type { createHealthActivities, HealthReport } from '../activities/health';
import { NON_RETRYABLE_ERROR_TYPES } from '../shared/errors';

const { checkServices } = proxyActivities<ReturnType<typeof createHealthActivities>>({
  startToCloseTimeout: '1 minute',
  retry: { maximumAttempts: 3, nonRetryableErrorTypes: NON_RETRYABLE_ERROR_TYPES },
});

/** The token names a blob and a catalog key: a short plain word, never a path. */
const TOKEN = /^[A-Za-z0-9_-]{1,64}$/;

/** A round trip through Temporal, every storage location and the catalog. */
export async function CheckServices(token: string): Promise<HealthReport> {
  if (typeof token !== 'string' || !TOKEN.test(token)) {
    throw ApplicationFailure.nonRetryable(`token must be 1 to 64 letters, digits, "-" or "_"`, 'InvalidInput');
  }
  return checkServices.executeWithOptions({ summary: 'a round trip through every storage location and the catalog' }, [token]);
}
