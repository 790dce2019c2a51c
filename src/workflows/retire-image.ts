import {
  CancellationScope,
  CancelledFailure,
  isCancellation,
  log,
  patched,
  setCurrentDetails,
  upsertSearchAttributes,
} from '@temporalio/workflow';
import type { RunRef } from '../catalog/image-records';
import { asFailure } from '../shared/failures';
import { validateRetireInput, type RetireInput, type RetireResult } from '../shared/lifecycle-input';
import { control, controlWith } from './activity-options';
import { removeInBatches } from './retire-batches';
import { incomplete, removeFromSddc, settled, startRemoval, type Removing, type Retiring } from './retire-steps';
import { runOwner } from './run-owner';
import { IMAGE_KEY, VERSION_KEY } from './search-attributes';
import { plural } from '../shared/units';

/**
 * Runs from this patch on try every removal before failing, and give the claim back when cancelled
 * before removing anything; older runs replay as they ran.
 */
const SETTLED_REMOVALS = 'retire-settles-removals';

/**
 * Runs from this patch on name their claim by runOwner() (a Workflow Reset keeps it), remove the SDDCs'
 * copies in RetireSddcBatch children, and classify a cancel by the scope; older runs replay as they ran.
 */
const RETIRE_BATCHES = 'retire-batches';

/** The claim: checking a fleet's agents takes a while, so it beats, and a dead worker is noticed by that. */
const claiming = controlWith({ startToCloseTimeout: '10 minutes', heartbeatTimeout: '30 seconds' });

/**
 * RetireImage: claim the version (`retiring`: no deploy plans it any more; refused with DeployRunning
 * while one runs), have each SDDC's agent remove its copy (the file in its datastore, and a content
 * library's item), delete the blob from every storage location, and leave the tombstone (`retired`, when,
 * by which run). Every step is safe to repeat, so a failed or interrupted retire is finished by running
 * it again; a retired version's retire ends at once with nothing to do. A removal that fails leaves the
 * others to finish, and the run then fails with one RetireIncomplete naming each SDDC or location. The
 * SDDCs are removed in child batches (RetireSddcBatch) of at most BATCH_SIZE, so a fleet's retire keeps
 * every history small.
 */
export async function RetireImage(rawInput: RetireInput): Promise<RetireResult> {
  try {
    const input = validateRetireInput(rawInput);
    upsertSearchAttributes([
      { key: IMAGE_KEY, value: input.image },
      { key: VERSION_KEY, value: input.version },
    ]);
    const settles = patched(SETTLED_REMOVALS);
    if (settles && patched(RETIRE_BATCHES)) return await retireInBatches(input);
    // A cancel waits for the claim to be made or refused: a claim made after the run gave up would hold the version forever.
    const begin = () => control.beginRetire.executeWithOptions({ summary: `claim ${input.image}@${input.version}` }, [input]);
    const plan = settles ? await CancellationScope.nonCancellable(begin) : await begin();
    if (plan.state === 'retired') return { ...input, status: 'already-retired', sddcs: [], blobsRemoved: [] };
    setCurrentDetails(retireLine(input, plan));
    if (!settles) return await removeAll(plan);
    const removing = { started: false };
    try {
      if (CancellationScope.current().consideredCancelled) throw new CancelledFailure('retire cancelled');
      return await removeSettled(plan, removing);
    } catch (err) {
      // Nothing removed yet: the version is as it was. A claim taken over from another run stays, as that run may have removed copies.
      if (isCancellation(err) && !removing.started && plan.previous !== 'retiring') {
        await CancellationScope.nonCancellable(() =>
          control.abandonRetire.executeWithOptions({ summary: `give back the claim on ${input.image}@${input.version}` }, [
            input,
          ]),
        );
      }
      throw err;
    }
  } catch (err) {
    throw asFailure(err);
  }
}

/**
 * From RETIRE_BATCHES on. A cancel is told by the scope, not by the error's shape (a cancelled step may
 * resolve as a timeout): the claim is given back when nothing was removed, and the run ends Cancelled.
 */
async function retireInBatches(input: RetireInput): Promise<RetireResult> {
  const owner = runOwner();
  const ref = { image: input.image, version: input.version };
  const plan = await CancellationScope.nonCancellable(() =>
    claiming.beginRetire.executeWithOptions({ summary: `claim ${ref.image}@${ref.version}` }, [{ ...ref, owner }]),
  );
  if (plan.state === 'retired') return { ...ref, status: 'already-retired', sddcs: [], blobsRemoved: [] };
  setCurrentDetails(retireLine(ref, plan));
  const removing: Removing = { started: false };
  try {
    if (CancellationScope.current().consideredCancelled) throw new CancelledFailure('retire cancelled');
    return await removeBatched(plan, owner, removing);
  } catch (err) {
    if (!CancellationScope.current().consideredCancelled) throw err;
    // Nothing removed yet: the version is as it was. A claim taken over from another run stays, as that run may have removed copies.
    if (!removing.started && plan.previous !== 'retiring') {
      await CancellationScope.nonCancellable(() =>
        control.abandonRetire.executeWithOptions({ summary: `give back the claim on ${ref.image}@${ref.version}` }, [
          { ...ref, owner },
        ]),
      ).catch((cleanup: unknown) => log.warn('the retire claim could not be given back', { error: String(cleanup) }));
    }
    throw isCancellation(err) ? err : new CancelledFailure('retire cancelled');
  }
}

type SddcRemoval = RetireResult['sddcs'][number];

/** Runs before SETTLED_REMOVALS: the first failure fails the run. */
async function removeAll(plan: Retiring): Promise<RetireResult> {
  const ref = { image: plan.image, version: plan.version };
  const sddcs = await Promise.all(plan.sddcs.map((t) => removeFromSddc(plan, t)));
  const blobsRemoved: string[] = [];
  await Promise.all(
    plan.locations.map(async (location) => {
      const { removed } = await control.removeBlob.executeWithOptions({ summary: `delete the blob in ${location}` }, [
        { ...ref, location, blob: plan.blob },
      ]);
      if (removed) blobsRemoved.push(location);
    }),
  );
  await control.finishRetire.executeWithOptions({ summary: `leave the tombstone of ${ref.image}@${ref.version}` }, [ref]);
  return { ...ref, status: 'retired', sddcs, blobsRemoved: blobsRemoved.sort() };
}

/**
 * Every removal of a phase runs to its end, and what succeeded is recorded, before the run fails with
 * one RetireIncomplete naming what did not. SDDCs first: until their copies are gone the blobs stay, so a
 * retire that stops halfway loses nothing it still needs.
 */
async function removeSettled(plan: Retiring, removing: Removing): Promise<RetireResult> {
  const sddcs = settled(
    plan.sddcs.map((t) => t.sddc),
    await Promise.allSettled(plan.sddcs.map((t) => removeFromSddc(plan, t, removing))),
  );
  if (sddcs.failed.length > 0) throw incomplete(plan, 'SDDC', sddcs.failed, 'the blobs stay until every copy is gone; ');
  return removeBlobs(
    plan,
    sddcs.done.map(([, removal]) => removal),
    removing,
  );
}

/** From RETIRE_BATCHES on: removeSettled with the SDDCs in child batches, and the owner named. */
async function removeBatched(plan: Retiring, owner: RunRef, removing: Removing): Promise<RetireResult> {
  const { removed, failed } = await removeInBatches(plan, owner, removing);
  if (failed.length > 0) {
    throw incomplete(
      plan,
      'SDDC',
      failed.map((f) => [f.sddc, f.reason]),
      'the blobs stay until every copy is gone; ',
    );
  }
  return removeBlobs(plan, removed, removing, owner);
}

/** The blobs, once no SDDC holds a copy; then the tombstone. */
async function removeBlobs(plan: Retiring, sddcs: SddcRemoval[], removing: Removing, owner?: RunRef): Promise<RetireResult> {
  const ref = { image: plan.image, version: plan.version };
  const blobs = settled(
    plan.locations,
    await Promise.allSettled(
      plan.locations.map(async (location) => {
        startRemoval(removing);
        const removal = { ...ref, location, blob: plan.blob };
        return (await control.removeBlob.executeWithOptions({ summary: `delete the blob in ${location}` }, [removal])).removed;
      }),
    ),
  );
  if (blobs.failed.length > 0) throw incomplete(plan, 'storage location', blobs.failed, '');
  await control.finishRetire.executeWithOptions({ summary: `leave the tombstone of ${ref.image}@${ref.version}` }, [
    owner ? { ...ref, owner } : ref,
  ]);
  return {
    ...ref,
    status: 'retired',
    sddcs,
    blobsRemoved: blobs.done
      .filter(([, removed]) => removed)
      .map(([location]) => location)
      .sort(),
  };
}

/** "Retire app 1.2.0 from 1 SDDC and 2 storage locations" */
function retireLine(ref: RetireInput, plan: { sddcs: unknown[]; locations: unknown[] }): string {
  return `Retire ${ref.image} ${ref.version} from ${plural(plan.sddcs.length, 'SDDC')} and ${plural(plan.locations.length, 'storage location')}`;
}
