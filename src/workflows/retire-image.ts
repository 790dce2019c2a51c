import {
  ApplicationFailure,
  CancellationScope,
  CancelledFailure,
  isCancellation,
  patched,
  setCurrentDetails,
  upsertSearchAttributes,
} from '@temporalio/workflow';
import type { ContentLibraryActivities } from '../activities/content-library';
import type { AgentLifecycleActivities, RetirePlan, RetireTarget } from '../activities/lifecycle';
import type { SddcCopy } from '../shared/image-version';
import { VmhubError } from '../shared/errors';
import { asFailure } from '../shared/failures';
import { validateRetireInput, type RetireInput, type RetireResult } from '../shared/lifecycle-input';
import { libraryOf } from '../shared/sddc-target';
import { control } from './activity-options';
import { onAgent } from './deploy-to-sddcs';
import { IMAGE_KEY, VERSION_KEY } from './search-attributes';

/**
 * Runs from this patch on try every removal before failing, and give the claim back when cancelled
 * before removing anything; older runs replay as they ran.
 */
const SETTLED_REMOVALS = 'retire-settles-removals';

/**
 * RetireImage: claim the version (`retiring`: no deploy plans it any more; refused with DeployRunning
 * while one runs), have each SDDC's agent remove its copy (the file in its datastore, and a content
 * library's item), delete the blob from every storage location, and leave the tombstone (`retired`, when,
 * by which run). Every step is safe to repeat, so a failed or interrupted retire is finished by running
 * it again; a retired version's retire ends at once with nothing to do. A removal that fails leaves the
 * others to finish, and the run then fails with one RetireIncomplete naming each SDDC or location.
 */
export async function RetireImage(rawInput: RetireInput): Promise<RetireResult> {
  try {
    const input = validateRetireInput(rawInput);
    upsertSearchAttributes([
      { key: IMAGE_KEY, value: input.image },
      { key: VERSION_KEY, value: input.version },
    ]);
    const settles = patched(SETTLED_REMOVALS);
    // A cancel waits for the claim to be made or refused: a claim made after the run gave up would hold the version forever.
    const plan = settles
      ? await CancellationScope.nonCancellable(() => control.beginRetire(input))
      : await control.beginRetire(input);
    if (plan.state === 'retired') return { ...input, status: 'already-retired', sddcs: [], blobsRemoved: [] };
    setCurrentDetails(
      `Retire ${input.image} ${input.version} from ${plan.sddcs.length} SDDCs and ${plan.locations.length} storage locations`,
    );
    if (!settles) return await removeAll(plan);
    const removing = { started: false };
    try {
      if (CancellationScope.current().consideredCancelled) throw new CancelledFailure('retire cancelled');
      return await removeSettled(plan, removing);
    } catch (err) {
      // Nothing removed yet: the version is as it was. A claim taken over from another run stays, as that run may have removed copies.
      if (isCancellation(err) && !removing.started && plan.previous !== 'retiring') {
        await CancellationScope.nonCancellable(() => control.abandonRetire(input));
      }
      throw err;
    }
  } catch (err) {
    throw asFailure(err);
  }
}

type Retiring = Extract<RetirePlan, { state: 'retiring' }>;
type SddcRemoval = RetireResult['sddcs'][number];

/** Runs before SETTLED_REMOVALS: the first failure fails the run. */
async function removeAll(plan: Retiring): Promise<RetireResult> {
  const ref = { image: plan.image, version: plan.version };
  const sddcs = await Promise.all(plan.sddcs.map((t) => removeFromSddc(plan, t)));
  const blobsRemoved: string[] = [];
  await Promise.all(
    plan.locations.map(async (location) => {
      const { removed } = await control.removeBlob({ ...ref, location, blob: plan.blob });
      if (removed) blobsRemoved.push(location);
    }),
  );
  await control.finishRetire(ref);
  return { ...ref, status: 'retired', sddcs, blobsRemoved: blobsRemoved.sort() };
}

/**
 * Every removal of a phase runs to its end, and what succeeded is recorded, before the run fails with
 * one RetireIncomplete naming what did not. SDDCs first: until their copies are gone the blobs stay, so a
 * retire that stops halfway loses nothing it still needs.
 */
async function removeSettled(plan: Retiring, removing: { started: boolean }): Promise<RetireResult> {
  const ref = { image: plan.image, version: plan.version };
  const sddcs = settled(
    plan.sddcs.map((t) => t.sddc),
    await Promise.allSettled(plan.sddcs.map((t) => removeFromSddc(plan, t, removing))),
  );
  if (sddcs.failed.length > 0) throw incomplete(plan, 'SDDC', sddcs.failed, 'the blobs stay until every copy is gone; ');
  const blobs = settled(
    plan.locations,
    await Promise.allSettled(
      plan.locations.map(async (location) => {
        startRemoval(removing);
        return (await control.removeBlob({ ...ref, location, blob: plan.blob })).removed;
      }),
    ),
  );
  if (blobs.failed.length > 0) throw incomplete(plan, 'storage location', blobs.failed, '');
  await control.finishRetire(ref);
  return {
    ...ref,
    status: 'retired',
    sddcs: sddcs.done.map(([, removal]) => removal),
    blobsRemoved: blobs.done
      .filter(([, removed]) => removed)
      .map(([location]) => location)
      .sort(),
  };
}

/** The outcomes by name; a cancel among them is the run's outcome. */
function settled<T>(names: string[], outcomes: PromiseSettledResult<T>[]) {
  const done: Array<[string, T]> = [];
  const failed: Array<[string, unknown]> = [];
  outcomes.forEach((o, i) => (o.status === 'fulfilled' ? done.push([names[i], o.value]) : failed.push([names[i], o.reason])));
  const cancelled = failed.find(([, reason]) => isCancellation(reason));
  if (cancelled) throw cancelled[1];
  if (CancellationScope.current().consideredCancelled) throw new CancelledFailure('retire cancelled');
  return { done, failed };
}

/** Notes that something is about to be removed, unless the run is cancelled (then nothing is). */
function startRemoval(removing: { started: boolean }): void {
  if (CancellationScope.current().consideredCancelled) throw new CancelledFailure('retire cancelled');
  removing.started = true;
}

/** One failure for every removal that failed; what succeeded is recorded, so retiring again does only the rest. */
function incomplete(plan: Retiring, what: string, failed: Array<[string, unknown]>, note: string): ApplicationFailure {
  const reasons = failed.map(([name, err]) => `${name}: ${reasonOf(err)}`);
  return ApplicationFailure.nonRetryable(
    `${plan.image}@${plan.version} is not retired yet: ${failed.length} ${what}${failed.length === 1 ? '' : 's'} failed (${reasons.join('; ')}); ${note}retire it again once that is fixed`,
    'RetireIncomplete',
    failed.map(([name, err]) => ({ [what === 'SDDC' ? 'sddc' : 'location']: name, reason: reasonOf(err) })),
  );
}

function reasonOf(err: unknown): string {
  const failure = asFailure(err instanceof Error && err.cause ? err.cause : err);
  if (failure instanceof ApplicationFailure && failure.type) return `${failure.type}: ${failure.message}`;
  return failure instanceof Error ? failure.message : String(failure);
}

/** `removing` (runs from SETTLED_REMOVALS on) is told when a removal starts, and a cancel still records a removal done. */
async function removeFromSddc(plan: Retiring, t: RetireTarget, removing?: { started: boolean }): Promise<SddcRemoval> {
  if ((await control.agentsPolling({ taskQueue: t.taskQueue })) === 0) {
    throw new VmhubError(
      'NoAgent',
      `no agent has polled task queue ${t.taskQueue} of ${t.sddc} in the last five minutes; start it with \`npm run agent -- ${t.sddc}\` and retire again (or, for an SDDC gone for good, \`vmhub sddc remove ${t.sddc}\`)`,
    );
  }
  const agent = onAgent<AgentLifecycleActivities & ContentLibraryActivities>(t.taskQueue, { startToCloseTimeout: '10 minutes' });
  const copy: SddcCopy = {
    sddc: t.sddc,
    image: plan.image,
    version: plan.version,
    format: plan.format,
    sha256: plan.sha256,
    sizeBytes: plan.sizeBytes,
  };
  if (removing) startRemoval(removing);
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
  const record = () => control.recordRemoval({ image: plan.image, version: plan.version, sddc: t.sddc });
  await (removing ? CancellationScope.nonCancellable(record) : record());
  return { sddc: t.sddc, files: removed, libraryItem };
}
