import {
  ApplicationFailure,
  CancellationScope,
  defineQuery,
  executeChild,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import { runPool } from '../concurrency';
import { asFailure } from '../failures';
import { validatePublishInput, type PublishInput, type PublishProgress, type PublishResult } from '../publish/input';
import { isSemver, validateVersion } from '../names';
import { planRanges } from '../storage/block-plan';
import { formatBytes } from '../units';
import { deployWorkflowId } from '../deploy/input';
import { DeployToSDDCs } from './deploy-to-sddcs';
import { IMAGE_KEY, VERSION_KEY } from './search-attributes';

export const publishProgressQuery = defineQuery<PublishProgress>('progress');

const quick = proxyActivities<Activities>({
  startToCloseTimeout: '5 minutes',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute' },
});

/** Long transfers: a heartbeat timeout notices a dead worker quickly, and the retry resumes from the last heartbeat. */
const transfer = proxyActivities<Activities>({
  startToCloseTimeout: '6 hours',
  heartbeatTimeout: '15 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '30 seconds' },
});

/**
 * PublishImage (SPEC §4): validate → probe → claim → stage blocks in parallel while hashing → commit and
 * verify → record metadata → mark available. The block IDs never pass through history: workers derive
 * them from the bytes, and the commit checks them against the hashing pass.
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
    progress.phase = 'failed';
    throw asFailure(err);
  }
}

async function publish(rawInput: PublishInput, progress: PublishProgress): Promise<PublishResult> {
  const input = validatePublishInput(rawInput);
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
    if (sha256 !== claim.existing.sha256) {
      throw ApplicationFailure.nonRetryable(
        `${input.image}@${version} is already published with SHA-256 ${claim.existing.sha256}; the source's is ${sha256}`,
        'VersionConflict',
      );
    }
    await distribute(input, claim.existing, progress);
    return claim.existing;
  }
  const { location } = claim;

  let result: PublishResult;
  try {
    progress.phase = 'staging';
    const inspecting = transfer.inspectSource.executeWithOptions({ summary: 'SHA-256 and metadata of the whole image' }, [
      { source: input.source, plan },
    ]);
    await runPool(planRanges(plan.blockCount), probe.rangeFanOut, async (range) => {
      const last = range.first + range.count - 1;
      const staged = await transfer.stageBlockRange.executeWithOptions({ summary: `stage blocks ${range.first}–${last}` }, [
        { source: input.source, location, plan, range },
      ]);
      progress.blocksStaged += range.count;
      progress.bytesStaged = Math.min(plan.sizeBytes, progress.bytesStaged + range.count * plan.blockSize);
      progress.blocksUploaded += staged.uploaded;
      progress.blocksReused += staged.reused;
    });
    progress.bytesStaged = plan.sizeBytes;
    const { metadata, ...digest } = await inspecting;

    progress.phase = 'committing';
    await quick.commitBlocks.executeWithOptions({ summary: `commit ${plan.blockCount} blocks` }, [
      { source: input.source, location, plan, format: probe.format, digest, image: input.image, version },
    ]);

    progress.phase = 'cataloging';
    result = await quick.markAvailable({ image: input.image, version, sha256: digest.sha256, metadata });
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    await CancellationScope.nonCancellable(() =>
      quick.abandonPublish({ image: input.image, version, location, error: reason.slice(0, 500) }),
    );
    throw err;
  }
  await distribute(input, result, progress);
  return result;
}

/** After the version is available: copy it to every replica location, then deploy it if asked. */
async function distribute(input: PublishInput, result: PublishResult, progress: PublishProgress): Promise<void> {
  progress.phase = 'replicating';
  const { replicas } = await quick.replicaLocations();
  await Promise.all(
    replicas.map((location) =>
      transfer.replicateImage.executeWithOptions({ summary: `replicate to ${location}` }, [
        { image: result.image, version: result.version, location },
      ]),
    ),
  );
  if (input.deployTo && input.deployTo.length > 0) {
    progress.phase = 'deploying';
    await executeChild(DeployToSDDCs, {
      args: [{ image: result.image, version: result.version, sddcs: input.deployTo }],
      workflowId: deployWorkflowId(result.image, result.version, workflowInfo().workflowId),
      staticSummary: `Deploy ${result.image} ${result.version} to ${input.deployTo.join(', ')}`,
    });
  }
  progress.phase = 'done';
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
