import { ActivityFailure, continueAsNew, isCancellation, patched, setCurrentDetails } from '@temporalio/workflow';
import { asFailure } from '../shared/failures';
import { validateVerifyInput, type VerifyInput, type VerifyResult } from '../shared/lifecycle-input';
import { control, transfer, transferOnWorkflowQueue } from './activity-options';
import { plural } from '../shared/units';

/** Versions checked per run: the history stays bounded, and the next page continues as a new run. */
const PAGE = 50;
/** Findings listed in the result; `findingsTotal` counts every one. */
const MAX_FINDINGS = 100;

/** Runs past this patch hash each replica's bytes on the transfer queue; earlier ones compared labels on the workflow's. */
export const VERIFY_CONTENT_PATCH = 'verify-replica-content';

/**
 * VerifyReplicas: re-checks the replicas of the available versions (or of one image or version): their
 * labels against the primary's (committed block list, size, SHA-256 metadata), then their bytes, read
 * and hashed against the version's SHA-256. Versions whose replicas were hashed least recently go first,
 * within a byte budget per run (VMHUB_VERIFY_BYTES_PER_DAY); the rest wait for a later run. A replica that
 * differs is marked `stale` and replicated again; one being replicated (`pending`) is reported, not touched. Runs on a schedule (daily by default) and on demand (`vmhub verify`).
 */
export async function VerifyReplicas(rawInput: VerifyInput = {}): Promise<VerifyResult> {
  try {
    const input = validateVerifyInput(rawInput);
    const result: VerifyResult = input.carried ?? { versionsChecked: 0, replicasChecked: 0, findings: [], findingsTotal: 0 };
    const page = await control.versionsToVerify({ image: input.image, version: input.version, after: input.after, limit: PAGE });
    setCurrentDetails(`Verify ${plural(page.versions.length, 'version')} on ${page.replicas.join(', ') || 'no replica'}`);
    for (const v of page.versions) {
      for (const location of page.replicas) {
        let reason: string | undefined;
        let repaired = false;
        // One replica that cannot be checked or repaired now leaves the others to check; the catalog says what it is.
        try {
          const check = patched(VERIFY_CONTENT_PATCH)
            ? await transfer.verifyReplicaContent.executeWithOptions(
                { summary: `hash the replica of ${v.image} ${v.version} at ${location}` },
                [{ ...v, location }],
              )
            : await control.checkReplica({ ...v, location });
          if (check.status === 'gone') continue;
          if (check.status === 'pending') {
            // A replication of it is running: reported, and no second copy started beside it.
            reason = check.reason ?? 'a replication of it is running; not checked';
          } else {
            result.replicasChecked++;
            if (check.status === 'verified') continue;
            reason = check.reason ?? 'differs from the primary';
            // Runs that began when a repair ran on the workflow's own queue keep it there.
            const transfers = patched('verify-transfer-queue') ? transfer : transferOnWorkflowQueue;
            await transfers.replicateImage.executeWithOptions(
              { summary: `replicate ${v.image} ${v.version} to ${location} again` },
              [{ ...v, location }],
            );
            repaired = true;
          }
        } catch (err) {
          if (isCancellation(err)) throw err;
          const failure = asFailure(err instanceof ActivityFailure && err.cause ? err.cause : err);
          const message = failure instanceof Error ? failure.message : String(failure);
          reason = reason === undefined ? `not checked: ${message}` : `${reason}; replicating again failed: ${message}`;
        }
        result.findingsTotal++;
        if (result.findings.length < MAX_FINDINGS) result.findings.push({ ...v, location, reason: reason ?? '', repaired });
      }
      result.versionsChecked++;
    }
    if (page.left !== undefined) result.versionsLeft = page.left;
    if (page.next !== undefined) {
      await continueAsNew<typeof VerifyReplicas>({
        image: input.image,
        version: input.version,
        after: page.next,
        carried: result,
      });
    }
    return result;
  } catch (err) {
    throw asFailure(err);
  }
}
