import { ActivityFailure, ApplicationFailure, patched, proxyActivities } from '@temporalio/workflow';
import type { DeploymentPlan } from '../activities/deploy';
import type { PreflightActivities, PreflightInput } from '../activities/preflight';
import type { DeployResultRow } from '../shared/deploy-input';
import { NON_RETRYABLE_ERROR_TYPES } from '../shared/errors';
import type { ContentLibraryTarget } from '../shared/target-kinds/kind';

/** Runs past this patch ask a content-library SDDC's agent, before any download, whether its vCenter can run the version. */
export const DEPLOY_PREFLIGHT_PATCH = 'deploy-preflight';

/** What an agent of a build without the preflight answers: the version is then not checked. */
const NOT_REGISTERED = 'NotFoundError';

type PreflightRow = Pick<DeployResultRow, 'status' | 'source' | 'reason'>;

/**
 * The `skipped` row of a content-library SDDC whose vCenter lacks a network the descriptor needs (and no
 * mapping names one it has), cannot create its hardware version, or has no host it fits; undefined when
 * the version may go ahead, or when the plan has no descriptor facts (an ISO) to check. Asked of the agent
 * on its quick queue, since only it may log in to its vCenter.
 */
export async function preflightRow(
  plan: DeploymentPlan,
  sddc: string,
  library: ContentLibraryTarget,
  quickQueue: string,
): Promise<PreflightRow | undefined> {
  if (!plan.descriptor || !patched(DEPLOY_PREFLIGHT_PATCH)) return undefined;
  const agent = proxyActivities<PreflightActivities>({
    taskQueue: quickQueue,
    scheduleToStartTimeout: '30 minutes',
    startToCloseTimeout: '5 minutes',
    retry: {
      initialInterval: '2 seconds',
      maximumAttempts: 5,
      nonRetryableErrorTypes: [...NON_RETRYABLE_ERROR_TYPES, NOT_REGISTERED],
    },
  });
  const { image, version, format, sha256, sizeBytes, descriptor } = plan;
  const input: PreflightInput = { sddc, image, version, format, sha256, sizeBytes, target: library, descriptor };
  let refusals: string[];
  try {
    ({ refusals } = await agent.preflightLibrary.executeWithOptions(
      { summary: `preflight ${plan.image}@${plan.version} against the vCenter of ${sddc}` },
      [input],
    ));
  } catch (err) {
    if (err instanceof ActivityFailure && err.cause instanceof ApplicationFailure && err.cause.type === NOT_REGISTERED) {
      return undefined;
    }
    throw err;
  }
  return refusals.length > 0 ? { status: 'skipped', source: null, reason: `preflight: ${refusals.join('; ')}` } : undefined;
}
