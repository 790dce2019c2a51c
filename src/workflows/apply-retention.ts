import {
  CancellationScope,
  ChildWorkflowCancellationType,
  executeChild,
  isCancellation,
  ParentClosePolicy,
  patched,
  setCurrentDetails,
} from '@temporalio/workflow';
import { runPool } from '../shared/concurrency';
import { asFailure } from '../shared/failures';
import {
  RETENTION_MAX_RETIRES,
  retireWorkflowId,
  validateRetentionInput,
  type RetentionInput,
  type RetentionResult,
} from '../shared/lifecycle-input';
import { control } from './activity-options';
import { RetireImage } from './retire-image';
import { plural } from '../shared/units';

/** Retires running at once from RETIRES_IN_POOL on: each batches its own SDDCs, so this bounds the pending children. */
const RETIRES_AT_ONCE = 4;

/**
 * Runs from this patch on run their retires RETIRES_AT_ONCE at a time, each cancelled rather than
 * terminated when the run closes (its cleanup matters); older runs replay one after another.
 */
const RETIRES_IN_POOL = 'retention-retires-in-pool';

/**
 * ApplyRetention: finishes the retires left `retiring` by a run that crashed or was cancelled, and under
 * each image's retention policy (`vmhub retention set <image> --keep N`) retires the available versions
 * beyond the newest N that no SDDC holds, each by a RetireImage child.
 */
export async function ApplyRetention(rawInput: RetentionInput = {}): Promise<RetentionResult> {
  try {
    const input = validateRetentionInput(rawInput);
    const plan = await control.retentionPlan.executeWithOptions(
      { summary: input.image ? `choose the versions of ${input.image} to retire` : 'choose the versions to retire' },
      [{ image: input.image, limit: RETENTION_MAX_RETIRES }],
    );
    setCurrentDetails(`Retire ${plural(plan.length, 'version')} under retention policies`);
    const result: RetentionResult = { retired: [], failed: [] };
    const pooled = patched(RETIRES_IN_POOL);
    const retire = async (v: (typeof plan)[number]) => {
      const ref = `${v.image}@${v.version}`;
      try {
        await executeChild(RetireImage, {
          args: [v],
          workflowId: retireWorkflowId(v.image, v.version),
          ...(pooled
            ? {
                parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL,
                cancellationType: ChildWorkflowCancellationType.WAIT_CANCELLATION_COMPLETED,
                staticSummary: `Retire ${v.image} ${v.version}`,
              }
            : {}),
        });
        result.retired.push(ref);
      } catch (err) {
        if (isCancellation(err) || (pooled && CancellationScope.current().consideredCancelled)) throw err;
        const cause = asFailure(err instanceof Error && err.cause ? err.cause : err);
        result.failed.push({ ref, reason: cause instanceof Error ? cause.message : String(cause) });
      }
    };
    if (pooled) await runPool(plan, RETIRES_AT_ONCE, retire);
    else for (const v of plan) await retire(v);
    return result;
  } catch (err) {
    throw asFailure(err);
  }
}
