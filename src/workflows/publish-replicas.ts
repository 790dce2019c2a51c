import { ActivityFailure, CancellationScope, isCancellation, patched, workflowInfo } from '@temporalio/workflow';
import type { PublishProgress, PublishResult } from '../shared/publish-input';
import { control, controlWith, type transfer } from './activity-options';
import { replicatingLine } from './current-details';
import { failureReason } from './deploy-rows';

/** Runs past this patch leave no replica `pending` when a cancel stops its copy: see settleReplicas. */
export const SETTLE_REPLICAS_PATCH = 'publish-cancel-settles-replicas';

/** The checks after a cancel: bounded like the publish's other cleanup, so the run ends even when the catalog never answers. */
const afterCancel = controlWith({ scheduleToCloseTimeout: '10 minutes' });

/** What replication needs of the publish: its progress, and the Web UI's details. */
interface Publish {
  progress: PublishProgress;
  show(...lines: string[]): void;
}

/**
 * Copies an available version to every replica location (after `first`, the overlap note), noting each
 * copy in the progress's `done`; returns the locations. A cancel stops the copies: runs past the patch
 * then wait until every copy has stopped and settle what they left before the run ends Cancelled, so the
 * cancel's report says what was copied and what is left.
 */
export async function replicate(
  transfers: typeof transfer,
  result: PublishResult,
  publish: Publish,
  first?: () => Promise<void>,
): Promise<string[]> {
  const ref = `${result.image}@${result.version}`;
  const copied = new Set<string>();
  let locations: string[] | undefined;
  let copies: Array<Promise<void>> = [];
  try {
    await first?.();
    ({ replicas: locations } = await control.replicaLocations.executeWithOptions(
      { summary: `replica locations for ${ref}` },
      [],
    ));
    const all = locations;
    publish.show(`${ref} is available`, replicatingLine(all, 0));
    copies = all.map(async (location) => {
      await transfers.replicateImage.executeWithOptions({ summary: `replicate ${ref} to ${location}` }, [
        { image: result.image, version: result.version, location },
      ]);
      copied.add(location);
      publish.progress.done?.push(`replicated to ${location}`);
      publish.show(`${ref} is available`, replicatingLine(all, copied.size));
    });
    await Promise.all(copies);
    return all;
  } catch (err) {
    if ((isCancellation(err) || CancellationScope.current().consideredCancelled) && patched(SETTLE_REPLICAS_PATCH)) {
      await CancellationScope.nonCancellable(async () => {
        await Promise.allSettled(copies);
        const all =
          locations ??
          (await afterCancel.replicaLocations.executeWithOptions({ summary: `replica locations for ${ref}` }, [])).replicas;
        await settleReplicas(
          result,
          all.filter((l) => !copied.has(l)),
          publish.progress,
        );
      });
    }
    throw err;
  }
}

/**
 * Checks each replica a cancel stopped (or kept from starting) against the primary: one whose copy
 * finished after all is recorded verified and noted done; any other is marked `stale` in the catalog,
 * with why, which `show` prints and the next `vmhub verify` repairs; the progress's `left` says so, or
 * what could not be checked.
 */
async function settleReplicas(ref: Pick<PublishResult, 'image' | 'version'>, locations: string[], progress: PublishProgress) {
  const name = `${ref.image}@${ref.version}`;
  const verify = `\`vmhub verify ${name}\` copies it again`;
  const note = `replication cancelled by ${workflowInfo().workflowId}; ${verify}`;
  const checks = await Promise.allSettled(
    locations.map((location) =>
      afterCancel.checkReplica.executeWithOptions({ summary: `check the replica of ${name} at ${location} after the cancel` }, [
        { image: ref.image, version: ref.version, location, note },
      ]),
    ),
  );
  progress.left ??= [];
  checks.forEach((check, i) => {
    const location = locations[i];
    if (check.status === 'rejected') {
      const cause: unknown = check.reason instanceof ActivityFailure ? check.reason.cause : check.reason;
      progress.left!.push(`${location}: not checked (${failureReason(cause)}); its replica may read pending until ${verify}`);
    } else if (check.value.status === 'verified') {
      progress.done?.push(`replicated to ${location}`);
    } else if (check.value.status === 'stale') {
      progress.left!.push(`${location}: stale, ${check.value.reason ?? 'differs from the primary'}`);
    }
    // `gone`: the version was retired meanwhile, and nothing of it is left to copy.
  });
}
