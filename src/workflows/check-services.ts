import { proxyActivities } from '@temporalio/workflow';
import type { createHealthActivities, HealthReport } from '../activities/health';

const { checkServices } = proxyActivities<ReturnType<typeof createHealthActivities>>({
  startToCloseTimeout: '1 minute',
  retry: { maximumAttempts: 3 },
});

/** A round trip through Temporal, every storage location and the catalog. */
export async function CheckServices(token: string): Promise<HealthReport> {
  return checkServices(token);
}
