import {
  ApplicationFailure,
  CancellationScope,
  ChildWorkflowFailure,
  defineQuery,
  executeChild,
  isCancellation,
  patched,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { CommitInput, Inspection, ProbeResult, StageInput } from '../activities/publish';
import { runPool } from '../concurrency';
import { asFailure } from '../failures';
import {
  validatePublishInput,
  type BlobLocation,
  type PublishInput,
  type PublishProgress,
  type PublishResult,
} from '../publish/input';
import { isSemver, validateVersion } from '../names';
import { planRanges, rangesContaining, type BlockRange } from '../storage/block-plan';
import { formatBytes } from '../units';
import { deployWorkflowId, type DeployResult } from '../deploy/input';
import { transferTaskQueueOf } from '../task-queues';
import { BOOKKEEPING, TRANSFER } from './activity-options';
import { DeployToSDDCs } from './deploy-to-sddcs';
import { IMAGE_KEY, VERSION_KEY } from './search-attributes';

export const publishProgressQuery = defineQuery<PublishProgress>('progress');

const quick = proxyActivities<Activities>(BOOKKEEPING);

/** The long transfers' activities; runs that began before transfers had a task queue of their own keep the workflow's. */
type Transfers = ReturnType<typeof proxyActivities<Activities>>;

function transferActivities(): Transfers {
  if (!patched('transfer-task-queue')) return proxyActivities<Activities>(TRANSFER);
  return proxyActivities<Activities>({ ...TRANSFER, taskQueue: transferTaskQueueOf(workflowInfo().taskQueue) });
}

/** Rounds of staging again blocks that storage no longer holds at commit, before the publish gives up. */
const RESTAGE_ROUNDS = 2;

/**
 * PublishImage: validate → probe → claim → stage blocks in parallel while hashing → commit and verify →
 * record metadata → mark available → replicate → deploy. The block IDs never pass through history:
 * workers derive them from the bytes, and the commit checks them against the hashing pass. A failure or
 * a cancel before the version is available stops every transfer, then removes what the run wrote.
 */
export async function PublishImage(rawInput: PublishInput): Promise<PublishResult> {
  const progress: PublishProgress = {
    phase: 'validating',
    bytesTotal: 0,
    bytesStaged: 0,
    blocksTotal: 0,
    blocksStaged: 0,
    blocksUploaded: 0,
    blocksReused: 0,
    startedAt: new Date(workflowInfo().startTime).toISOString(),
  };
  setHandler(publishProgressQuery, () => progress);

  try {
    return await publish(rawInput, progress);
  } catch (err) {
    progress.phase = isCancellation(err) ? 'cancelled' : 'failed';
    throw asFailure(err);
  }
}

async function publish(rawInput: PublishInput, progress: PublishProgress): Promise<PublishResult> {
  const input = validatePublishInput(rawInput);
  const transfer = transferActivities();
  upsertSearchAttributes([{ key: IMAGE_KEY, value: input.image }]);
  if (input.deployTo && input.deployTo.length > 0) await quick.checkSddcs(input.deployTo);

  progress.phase = 'probing';
  const probe = await quick.probeSource({ source: input.source, format: input.format });
  const version = resolveVersion(input.version, probe.productVersion);
  upsertSearchAttributes([{ key: VERSION_KEY, value: version }]);
  const { plan } = probe;
  setCurrentDetails(
    `Publish ${input.image} ${version} (${formatBytes(plan.sizeBytes)} ${probe.format.toUpperCase()}) from ${probe.origin}`,
  );
  progress.bytesTotal = plan.sizeBytes;
  progress.blocksTotal = plan.blockCount;

  const claim = await quick.claimVersion({ image: input.image, version, format: probe.format, plan });
  if (claim.state === 'available') {
    const { sha256 } = await transfer.inspectSource.executeWithOptions({ summary: 'compare with the published version' }, [
      { source: input.source, plan },
    ]);
    requirePinnedDigest(input, sha256);
    if (sha256 !== claim.existing.sha256) {
      throw ApplicationFailure.nonRetryable(
        `${input.image}@${version} is already published with SHA-256 ${claim.existing.sha256}; the source's is ${sha256}`,
        'VersionConflict',
      );
    }
    return distribute(transfer, input, claim.existing, progress);
  }
  const { location } = claim;

  let result: PublishResult;
  try {
    progress.phase = 'staging';
    const { metadata, ...digest } = await stageAndInspect(transfer, input.source, probe, location, progress);
    requirePinnedDigest(input, digest.sha256);
    progress.phase = 'committing';
    const commitInput = {
      source: input.source,
      pin: probe.sourceVersion,
      location,
      plan,
      format: probe.format,
      digest,
      image: input.image,
      version,
    };
    await commit(transfer, commitInput, probe.rangeFanOut, progress);
    progress.phase = 'cataloging';
    result = await quick.markAvailable({ image: input.image, version, sha256: digest.sha256, metadata });
  } catch (err) {
    const cancelled = isCancellation(err);
    progress.phase = cancelled ? 'cancelling' : 'failed';
    const shown = asFailure(err);
    const reason = cancelled ? 'cancelled' : shown instanceof Error ? shown.message : String(shown);
    try {
      const abandoned = await CancellationScope.nonCancellable(() =>
        quick.abandonPublish({
          image: input.image,
          version,
          location,
          status: cancelled ? 'cancelled' : 'failed',
          error: reason.slice(0, 500),
        }),
      );
      progress.cleanup = abandoned.removed;
    } catch (cleanupErr) {
      // The failure that ended the run is what the operator needs; a cleanup that could not finish is noted.
      progress.cleanup = [`cleanup did not finish: ${cleanupErr instanceof Error ? cleanupErr.message : String(cleanupErr)}`];
    }
    throw err;
  }
  // Runs that began before publishes noted the overlap go straight on.
  if (patched('publish-overlap')) await noteOverlap(result);
  return distribute(transfer, input, result, progress);
}

/**
 * Stages every block range while one pass hashes and inspects the whole image, in one cancellation
 * scope: the first failure cancels the rest and waits until every transfer has stopped, so nothing is
 * still writing when the caller cleans up, and the run fails with that first failure's type.
 */
async function stageAndInspect(
  transfer: Transfers,
  source: string,
  probe: ProbeResult,
  location: BlobLocation,
  progress: PublishProgress,
): Promise<Inspection> {
  const { plan } = probe;
  return CancellationScope.cancellable(async () => {
    const scope = CancellationScope.current();
    let first: { error: unknown } | undefined;
    const failFast = <T>(work: Promise<T>): Promise<T> =>
      work.catch((error: unknown) => {
        first ??= { error };
        scope.cancel();
        throw error;
      });
    const inspecting = failFast(
      transfer.inspectSource.executeWithOptions({ summary: 'SHA-256 and metadata of the whole image' }, [
        { source, plan, pin: probe.sourceVersion },
      ]),
    );
    const staging = stageRanges(
      transfer,
      { source, pin: probe.sourceVersion, location, plan },
      planRanges(plan.blockCount),
      probe.rangeFanOut,
      progress,
      failFast,
    );
    try {
      const [inspection] = await Promise.all([inspecting, staging]);
      return inspection;
    } catch (err) {
      await Promise.allSettled([inspecting, staging]);
      throw first?.error ?? err;
    }
  });
}

async function stageRanges(
  transfer: Transfers,
  target: Omit<StageInput, 'range'>,
  ranges: BlockRange[],
  fanOut: number,
  progress: PublishProgress,
  failFast: <T>(work: Promise<T>) => Promise<T> = (work) => work,
): Promise<void> {
  const { plan } = target;
  await runPool(ranges, fanOut, async (range) => {
    const last = range.first + range.count - 1;
    const staged = await failFast(
      transfer.stageBlockRange.executeWithOptions({ summary: `stage blocks ${range.first}–${last}` }, [{ ...target, range }]),
    );
    progress.blocksStaged = Math.min(plan.blockCount, progress.blocksStaged + range.count);
    progress.bytesStaged = Math.min(plan.sizeBytes, progress.bytesStaged + range.count * plan.blockSize);
    progress.blocksUploaded += staged.uploaded;
    progress.blocksReused += staged.reused;
  });
}

/** Commits the block list; blocks storage no longer holds (expired, or discarded by another writer) are staged again first. */
async function commit(transfer: Transfers, input: CommitInput, fanOut: number, progress: PublishProgress): Promise<void> {
  for (let round = 0; ; round++) {
    const out = await transfer.commitBlocks.executeWithOptions({ summary: `commit ${input.plan.blockCount} blocks` }, [input]);
    if (out.committed) return;
    if (round === RESTAGE_ROUNDS) {
      throw ApplicationFailure.nonRetryable(
        `storage lost staged blocks ${out.missing.map((r) => `${r.first}–${r.first + r.count - 1}`).join(', ')} again after ${RESTAGE_ROUNDS} rounds of staging them`,
        'StorageMismatch',
      );
    }
    const ranges = rangesContaining(planRanges(input.plan.blockCount), out.missing);
    await stageRanges(
      transfer,
      { source: input.source, pin: input.pin, location: input.location, plan: input.plan },
      ranges,
      fanOut,
      progress,
    );
  }
}

/** After the version is available: copy it to every replica location, then deploy it if asked. */
async function distribute(
  transfer: Transfers,
  input: PublishInput,
  result: PublishResult,
  progress: PublishProgress,
): Promise<PublishResult> {
  progress.phase = 'replicating';
  const { replicas } = await quick.replicaLocations();
  await Promise.all(
    replicas.map((location) =>
      transfer.replicateImage.executeWithOptions({ summary: `replicate to ${location}` }, [
        { image: result.image, version: result.version, location },
      ]),
    ),
  );
  if (!input.deployTo || input.deployTo.length === 0) {
    progress.phase = 'done';
    return result;
  }
  progress.phase = 'deploying';
  const workflowId = deployWorkflowId(result.image, result.version, workflowInfo().workflowId);
  let deployed: DeployResult;
  try {
    deployed = await executeChild(DeployToSDDCs, {
      args: [{ image: result.image, version: result.version, sddcs: input.deployTo }],
      workflowId,
      staticSummary: `Deploy ${result.image} ${result.version} to ${input.deployTo.join(', ')}`,
    });
  } catch (err) {
    // The version is published either way: an incomplete deploy is reported in the result, not as a failed publish.
    const cause = err instanceof ChildWorkflowFailure ? err.cause : undefined;
    if (!(cause instanceof ApplicationFailure) || cause.type !== 'DeployIncomplete') throw err;
    const details: unknown = cause.details?.[0];
    const results = (details as Partial<DeployResult> | undefined)?.results;
    const counts = (details as Partial<DeployResult> | undefined)?.counts;
    deployed = { image: result.image, version: result.version, results: Array.isArray(results) ? results : [], counts };
  }
  progress.phase = 'done';
  return { ...result, deploy: { workflowId, results: deployed.results, counts: deployed.counts } };
}

/**
 * Notes how many blocks the new version shares with the previous one. The version is available either
 * way: an overlap that cannot be read (say, the previous blob is gone) is only left unnoted.
 */
async function noteOverlap(result: PublishResult): Promise<void> {
  try {
    await quick.noteOverlap.executeWithOptions({ summary: 'blocks shared with the previous version' }, [
      { image: result.image, version: result.version },
    ]);
  } catch (err) {
    if (isCancellation(err)) throw err;
  }
}

/** An image pinned by its publisher's checksum must hash to it; other bytes are never committed. */
function requirePinnedDigest(input: PublishInput, sha256: string): void {
  if (input.sha256 !== undefined && input.sha256.toLowerCase() !== sha256) {
    throw ApplicationFailure.nonRetryable(
      `the image hashes to SHA-256 ${sha256}, not the ${input.sha256.toLowerCase()} it was pinned to`,
      'ManifestMismatch',
    );
  }
}

/** The version asked for, else the one the image declares, if that is a semantic version. */
function resolveVersion(asked: string | undefined, declared: string | undefined): string {
  if (asked !== undefined) return validateVersion(asked);
  if (declared !== undefined && isSemver(declared)) return declared;
  throw ApplicationFailure.nonRetryable(
    declared === undefined
      ? 'no version given and the image declares none; pass one (e.g. "version": "1.2.3")'
      : `no version given and the image declares "${declared}", which is not a semantic version; pass one (e.g. "version": "1.2.3")`,
    'InvalidInput',
  );
}
