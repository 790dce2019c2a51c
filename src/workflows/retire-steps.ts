// The steps RetireImage and its batches share: one SDDC's removal, and how outcomes become a result or a failure.
import { ApplicationFailure, CancellationScope, CancelledFailure, isCancellation } from '@temporalio/workflow';
import type { ContentLibraryActivities } from '../activities/content-library';
import type { AgentLifecycleActivities, RetirePlan, RetireTarget } from '../activities/lifecycle';
import type { RunRef } from '../catalog/image-records';
import { VmhubError } from '../shared/errors';
import { asFailure, nameFirstFew } from '../shared/failures';
import type { SddcCopy } from '../shared/image-version';
import type { RetireResult } from '../shared/lifecycle-input';
import { libraryOf } from '../shared/sddc-target';
import { control } from './activity-options';
import { checkAgent, onAgent, type AgentChecker } from './agent-queues';
import { plural } from '../shared/units';

export type Retiring = Extract<RetirePlan, { state: 'retiring' }>;
export type SddcRemoval = RetireResult['sddcs'][number];
/** What an agent needs to know of the version to remove its copy. */
export type RetiredCopy = Pick<Retiring, 'image' | 'version' | 'format' | 'sha256' | 'sizeBytes'>;

/** The outcomes by name; a cancel among them is the run's outcome. */
export function settled<T>(names: string[], outcomes: PromiseSettledResult<T>[]) {
  const done: Array<[string, T]> = [];
  const failed: Array<[string, unknown]> = [];
  outcomes.forEach((o, i) => (o.status === 'fulfilled' ? done.push([names[i], o.value]) : failed.push([names[i], o.reason])));
  const cancelled = failed.find(([, reason]) => isCancellation(reason));
  if (cancelled) throw cancelled[1];
  if (CancellationScope.current().consideredCancelled) throw new CancelledFailure('retire cancelled');
  return { done, failed };
}

/** Whether a run has started removing; `tell`, when given, is awaited before the first removal of each SDDC. */
export interface Removing {
  started: boolean;
  tell?: () => Promise<void>;
}

/** Notes that something is about to be removed, unless the run is cancelled (then nothing is). */
export function startRemoval(removing: Removing): void {
  if (CancellationScope.current().consideredCancelled) throw new CancelledFailure('retire cancelled');
  removing.started = true;
}

/** One failure for every removal that failed; what succeeded is recorded, so retiring again does only the rest. */
export function incomplete(plan: RetiredCopy, what: string, failed: Array<[string, unknown]>, note: string): ApplicationFailure {
  const reasons = nameFirstFew(failed, ([name, err]) => `${name}: ${reasonOf(err)}`);
  return ApplicationFailure.nonRetryable(
    `${plan.image}@${plan.version} is not retired yet: ${plural(failed.length, what)} failed (${reasons}); ${note}retire it again once that is fixed`,
    'RetireIncomplete',
    failed.map(([name, err]) => ({ [what === 'SDDC' ? 'sddc' : 'location']: name, reason: reasonOf(err) })),
  );
}

export function reasonOf(err: unknown): string {
  if (typeof err === 'string') return err;
  const failure = asFailure(err instanceof Error && err.cause ? err.cause : err);
  if (failure instanceof ApplicationFailure && failure.type) return `${failure.type}: ${failure.message}`;
  return failure instanceof Error ? failure.message : String(failure);
}

/**
 * Has the SDDC's agent remove its copy (the file, and a library's item). `removing` (runs from
 * SETTLED_REMOVALS on) is told when a removal starts; `record`: each removal is recorded here (a batch
 * records its removals at once instead), and with `removing` a cancel still records a removal done.
 * `checkAgentOf`, a batch's, checks every SDDC of the batch in one activity.
 */
export async function removeFromSddc(
  plan: RetiredCopy,
  t: RetireTarget,
  removing?: Removing,
  record: { each: boolean; owner?: RunRef } = { each: true },
  checkAgentOf?: AgentChecker,
): Promise<SddcRemoval> {
  const checked = checkAgentOf
    ? await checkAgentOf({ name: t.sddc, taskQueue: t.taskQueue })
    : await checkAgent(control, `check the agent of ${t.sddc}`, { taskQueue: t.taskQueue });
  if (!checked.alive) {
    throw new VmhubError(
      'NoAgent',
      `no agent has polled task queue ${t.taskQueue} of ${t.sddc} in the last five minutes; start it with \`npm run agent -- ${t.sddc}\` and retire again (or, for an SDDC gone for good, \`vmhub sddc remove ${t.sddc}\`)`,
    );
  }
  // Removals are quick: on the agent's quick queue they never wait behind its downloads.
  const agent = onAgent<AgentLifecycleActivities & ContentLibraryActivities>(checked.quickQueue, {
    startToCloseTimeout: '10 minutes',
  });
  const copy: SddcCopy = {
    sddc: t.sddc,
    image: plan.image,
    version: plan.version,
    format: plan.format,
    sha256: plan.sha256,
    sizeBytes: plan.sizeBytes,
  };
  if (removing) {
    startRemoval(removing);
    await removing.tell?.();
  }
  const { removed } = await agent.removeDeployedCopy.executeWithOptions({ summary: `remove the copy on ${t.sddc}` }, [copy]);
  let libraryItem: string | null = null;
  const library = libraryOf(t.target);
  if (library) {
    const out = await agent.removeLibraryItem.executeWithOptions(
      { summary: `remove the item from library ${library.library} of ${t.sddc}` },
      [{ ...copy, target: library }],
    );
    libraryItem = out.removed?.itemId ?? null;
  }
  if (record.each) {
    const save = () =>
      control.recordRemoval.executeWithOptions({ summary: `record the removal from ${t.sddc}` }, [
        { image: plan.image, version: plan.version, sddc: t.sddc, ...(record.owner ? { owner: record.owner } : {}) },
      ]);
    await (removing ? CancellationScope.nonCancellable(save) : save());
  }
  return { sddc: t.sddc, files: removed, libraryItem };
}
