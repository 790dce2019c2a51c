import { executeChild, isCancellation, setCurrentDetails } from '@temporalio/workflow';
import { asFailure } from '../shared/failures';
import { retireWorkflowId, validateRetentionInput, type RetentionInput, type RetentionResult } from '../shared/lifecycle-input';
import { control } from './activity-options';
import { RetireImage } from './retire-image';

/**
 * Retires per run at most this many versions, one after another: the history stays bounded, and what is
 * left (or failed, e.g. while a deploy of it ran) is taken up by the next scheduled run.
 */
const MAX_RETIRES = 100;

/**
 * ApplyRetention: finishes the retires left `retiring` by a run that crashed or was cancelled, and under
 * each image's retention policy (`vmhub retention set <image> --keep N`) retires the available versions
 * beyond the newest N that no SDDC holds, each by a RetireImage child.
 */
export async function ApplyRetention(rawInput: RetentionInput = {}): Promise<RetentionResult> {
  try {
    const input = validateRetentionInput(rawInput);
    const plan = await control.retentionPlan({ image: input.image, limit: MAX_RETIRES });
    setCurrentDetails(`Retire ${plan.length} versions under retention policies`);
    const result: RetentionResult = { retired: [], failed: [] };
    for (const v of plan) {
      const ref = `${v.image}@${v.version}`;
      try {
        await executeChild(RetireImage, { args: [v], workflowId: retireWorkflowId(v.image, v.version) });
        result.retired.push(ref);
      } catch (err) {
        if (isCancellation(err)) throw err;
        const cause = asFailure(err instanceof Error && err.cause ? err.cause : err);
        result.failed.push({ ref, reason: cause instanceof Error ? cause.message : String(cause) });
      }
    }
    return result;
  } catch (err) {
    throw asFailure(err);
  }
}
