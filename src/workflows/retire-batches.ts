import {
  CancellationScope,
  CancelledFailure,
  ChildWorkflowCancellationType,
  ChildWorkflowFailure,
  defineSignal,
  executeChild,
  getExternalWorkflowHandle,
  ParentClosePolicy,
  setCurrentDetails,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { RetireTarget } from '../activities/lifecycle';
import type { RunRef } from '../catalog/image-records';
import { BATCH_SIZE } from '../shared/batches';
import { runPool } from '../shared/concurrency';
import { asFailure } from '../shared/failures';
import { control } from './activity-options';
import { agentChecker } from './agent-queues';
import { reasonOf, removeFromSddc, settled, type Removing, type RetiredCopy, type SddcRemoval } from './retire-steps';
import { plural } from '../shared/units';

/** Batches removing at once: bounds the pending children of one retire whatever the fleet. */
const BATCHES_AT_ONCE = 10;

/** A batch tells its retire, before its first removal, that the version is no longer intact. */
export const removingSignal = defineSignal('removing');

export interface RetireBatchInput extends RetiredCopy {
  sddcs: RetireTarget[];
  /** The retire's claim owner, which records the removals. */
  owner: RunRef;
}

export interface RetireBatchResult {
  removed: SddcRemoval[];
  failed: Array<{ sddc: string; reason: string }>;
}

/**
 * RetireSddcBatch: one batch of a retire's SDDCs (at most BATCH_SIZE). Every SDDC's agent removes its copy
 * at once, each removal runs to its end, and those done are recorded in one bulk write, a cancel
 * included; the failed ones are returned, not thrown, so the retire names them all.
 */
export async function RetireSddcBatch(input: RetireBatchInput): Promise<RetireBatchResult> {
  try {
    const { owner, sddcs: targets, ...copy } = input;
    setCurrentDetails(`Remove ${copy.image} ${copy.version} from ${plural(targets.length, 'SDDC')}`);
    let told: Promise<void> | undefined;
    const removing: Removing = { started: false, tell: () => (told ??= tellParent()) };
    const checkAgentOf = agentChecker(control, { taskQueues: targets.map((t) => t.taskQueue) });
    const outcomes = await Promise.allSettled(
      targets.map((t) => removeFromSddc(copy, t, removing, { each: false }, checkAgentOf)),
    );
    const removed = outcomes.flatMap((o) => (o.status === 'fulfilled' ? [o.value] : []));
    if (removed.length > 0) {
      await CancellationScope.nonCancellable(() =>
        control.recordRemovals.executeWithOptions({ summary: `record the removals from ${plural(removed.length, 'SDDC')}` }, [
          { image: copy.image, version: copy.version, sddcs: removed.map((r) => r.sddc), owner },
        ]),
      );
    }
    // Classified by the scope: a cancelled removal may resolve as a timeout.
    if (CancellationScope.current().consideredCancelled) throw new CancelledFailure('retire cancelled');
    const { failed } = settled(
      targets.map((t) => t.sddc),
      outcomes,
    );
    setCurrentDetails(`Removed ${copy.image} ${copy.version} from ${removed.length} of ${plural(targets.length, 'SDDC')}`);
    return { removed, failed: failed.map(([sddc, err]) => ({ sddc, reason: reasonOf(err) })) };
  } catch (err) {
    throw asFailure(err);
  }
}

/**
 * The retire's SDDCs in child batches, BATCHES_AT_ONCE at a time, so no history grows with the fleet and
 * no run has more than BATCH_SIZE activities pending. `removing` is set once a batch says it removes.
 */
export async function removeInBatches(
  plan: RetiredCopy & { sddcs: RetireTarget[] },
  owner: RunRef,
  removing: { started: boolean },
): Promise<RetireBatchResult> {
  setHandler(removingSignal, () => void (removing.started = true));
  const batches: RetireTarget[][] = [];
  for (let i = 0; i < plan.sddcs.length; i += BATCH_SIZE) batches.push(plan.sddcs.slice(i, i + BATCH_SIZE));
  const removed: SddcRemoval[][] = batches.map(() => []);
  const failed: RetireBatchResult['failed'] = [];
  const { workflowId } = workflowInfo();
  const { image, version, format, sha256, sizeBytes } = plan;
  let done = 0;
  await runPool(
    batches.map((sddcs, i) => ({ sddcs, i })),
    BATCHES_AT_ONCE,
    async ({ sddcs, i }) => {
      if (CancellationScope.current().consideredCancelled) return;
      try {
        const out = await executeChild(RetireSddcBatch, {
          args: [{ image, version, format, sha256, sizeBytes, sddcs, owner }],
          // Named by the owner too: a new retire of the version never meets the batches a terminated one is still cancelling.
          workflowId: `${workflowId}:${owner.runId}:${i + 1}`,
          parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL,
          cancellationType: ChildWorkflowCancellationType.WAIT_CANCELLATION_COMPLETED,
          staticSummary: `Remove ${image} ${version} from ${plural(sddcs.length, 'SDDC')}`,
        });
        removed[i] = out.removed;
        failed.push(...out.failed);
      } catch (err) {
        if (CancellationScope.current().consideredCancelled) return;
        const reason = reasonOf(err instanceof ChildWorkflowFailure ? err.cause : err);
        failed.push(...sddcs.map((t) => ({ sddc: t.sddc, reason })));
      }
      done++;
      setCurrentDetails(
        `Retire ${image} ${version}: ${done} of ${plural(batches.length, 'batch', 'batches')} of SDDCs done, ${plural(failed.length, 'SDDC')} failed`,
      );
    },
  );
  if (CancellationScope.current().consideredCancelled) throw new CancelledFailure('retire cancelled');
  return { removed: removed.flat(), failed };
}

/** Tells the retire (the parent) that removals start, and waits until it has heard: its cancel then keeps the claim. */
async function tellParent(): Promise<void> {
  const parent = workflowInfo().parent;
  if (!parent) return;
  try {
    // The workflow ID alone: after a Workflow Reset of the retire its current run is the one to tell.
    await getExternalWorkflowHandle(parent.workflowId).signal(removingSignal);
  } catch (err) {
    // A retire that is gone no longer decides anything; removing is safe to repeat.
    if (CancellationScope.current().consideredCancelled) throw err;
  }
}
