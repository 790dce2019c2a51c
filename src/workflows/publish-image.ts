import {
  ApplicationFailure,
  CancellationScope,
  CancelledFailure,
  ChildWorkflowFailure,
  defineQuery,
  executeChild,
  isCancellation,
  ParentClosePolicy,
  patched,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { RunRef } from '../catalog/image-records';
import type { CommitInput, Inspection, ProbeResult, SignOutput, StageInput } from '../activities/publish';
import { runPool } from '../shared/concurrency';
import { asFailure } from '../shared/failures';
import {
  validatePublishInput,
  type BlobLocation,
  type PublishInput,
  type PublishProgress,
  type PublishResult,
} from '../shared/publish-input';
import { ALL_SDDCS, describeSddcs, isSemver, validateVersion } from '../shared/names';
import { planRanges, rangesContaining, type BlockRange } from '../shared/block-plan';
import { formatBytes, plural } from '../shared/units';
import { transferTaskQueueOf } from '../shared/task-queues';
import { deployWorkflowId, type DeployResult } from '../shared/deploy-input';
import { control, controlWith, transfer, transferOnWorkflowQueue } from './activity-options';
import { DeployToSDDCs } from './deploy-to-sddcs';
import { countStatuses, detailsText, outcomeLine, stagingLine } from './current-details';
import { IMAGE_KEY, VERSION_KEY } from './search-attributes';
import { runOwner } from './run-owner';
import { replicate } from './publish-replicas';
import { startFromEarlier } from './publish-start';

export const publishProgressQuery = defineQuery<PublishProgress>('progress');

const quick = control;

/**
 * The abandon after a failure or cancel: on the workflow's own (control) queue, which a dead or hung
 * transfer worker cannot hold up, and bounded, so the run ends even when the catalog never answers.
 */
const cleanup = controlWith({ scheduleToCloseTimeout: '10 minutes' });

/** The long transfers' activities; runs that began before transfers had a task queue of their own keep the workflow's. */
type Transfers = typeof transfer;

function transferActivities(): Transfers {
  return patched('transfer-task-queue') ? transfer : transferOnWorkflowQueue;
}

/** The run's current details in the Web UI: a headline, and the step the run is at. */
class Details {
  headline = 'Publish';
  inspecting = false;

  constructor(readonly progress: PublishProgress) {}

  show(...lines: string[]): void {
    setCurrentDetails(detailsText(this.headline, ...lines));
  }

  /** Staging and the inspection that runs beside it. */
  showStaging(): void {
    const { bytesStaged, bytesTotal, startedFrom, blocksReused, bytesUploaded } = this.progress;
    const staging = bytesStaged < bytesTotal ? stagingLine(bytesStaged, bytesTotal) : `staged ${formatBytes(bytesTotal)}`;
    const reuse = startedFrom
      ? `started from ${startedFrom}: ${plural(blocksReused, 'block')} reused, ${formatBytes(bytesUploaded ?? 0)} sent`
      : '';
    this.show(staging, reuse, this.inspecting ? 'inspecting: SHA-256 and metadata of the whole image' : '');
  }
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
  const details = new Details(progress);
  // Runs that began before these kept their own run as owner and told a cancel by the error's shape.
  const owner = patched('publish-run-owner') ? runOwner() : undefined;
  const byScope = patched('publish-cancel-by-scope');

  try {
    return await publish(rawInput, details, { owner, byScope });
  } catch (err) {
    const failure = asFailure(err);
    const cancelled = wasCancelled(err, byScope);
    progress.phase = cancelled ? 'cancelled' : 'failed';
    const removed = progress.cleanup?.length ? `cleanup: ${progress.cleanup.join('; ')}` : '';
    const left = progress.left?.length ? `left: ${progress.left.join('; ')}` : '';
    details.show(`${progress.phase}: ${failure instanceof Error ? failure.message : String(failure)}`, removed, left);
    // Whatever the cancelled work ended with (a dead transfer worker's heartbeat timeout too), the run ends Cancelled.
    if (cancelled && byScope && !isCancellation(failure)) {
      throw new CancelledFailure(
        `cancelled; the stopped work ended with: ${failure instanceof Error ? failure.message : String(failure)}`,
      );
    }
    throw failure;
  }
}

/** A publish whose transfers no worker would run fails at once, rather than waiting out the transfers' bound. */
async function requireTransferWorker(details: Details): Promise<void> {
  const taskQueue = transferTaskQueueOf(workflowInfo().taskQueue);
  details.show(`checking that a worker polls ${taskQueue}`);
  const polling = await quick.transferWorkersPolling.executeWithOptions({ summary: `is a worker polling ${taskQueue}?` }, [
    { taskQueue },
  ]);
  if (polling > 0) return;
  throw ApplicationFailure.nonRetryable(
    `no worker has polled task queue ${taskQueue} in the last five minutes, so no transfer would run; start one with \`npm run worker\``,
    'NoTransferWorker',
  );
}

/**
 * Whether the run ends because it was asked to stop. Once a cancel is requested, every error is its
 * consequence: an activity on a dead worker resolves as a heartbeat timeout, not as a cancel.
 */
function wasCancelled(err: unknown, byScope: boolean): boolean {
  return isCancellation(err) || (byScope && CancellationScope.current().consideredCancelled);
}

interface RunRules {
  /** The claim's owner, the same for every run of a reset or continued chain; undefined in runs that began before. */
  owner: RunRef | undefined;
  /** Whether a cancel is told by the workflow's scope (see wasCancelled) and cleaned up by `cleanup`. */
  byScope: boolean;
}

async function publish(rawInput: PublishInput, details: Details, rules: RunRules): Promise<PublishResult> {
  const { owner, byScope } = rules;
  const { progress } = details;
  const input = validatePublishInput(rawInput);
  const transfer = transferActivities();
  details.headline = `Publish ${input.image}`;
  upsertSearchAttributes([{ key: IMAGE_KEY, value: input.image }]);
  if (deploysAnywhere(input)) {
    details.show('checking the SDDCs to deploy to');
    await quick.checkSddcs.executeWithOptions({ summary: `check SDDCs ${describeSddcs(input.deployTo)}` }, [input.deployTo]);
  }

  // Runs from this patch on fail at once, typed, when no worker would run their transfers.
  if (transfer !== transferOnWorkflowQueue && patched('transfer-worker-check')) await requireTransferWorker(details);

  progress.phase = 'probing';
  details.show(`probing ${input.source}`);
  const probe = await quick.probeSource.executeWithOptions({ summary: `probe ${input.source} for ${input.image}` }, [
    { source: input.source, format: input.format },
  ]);
  const version = resolveVersion(input.version, probe.productVersion);
  const ref = `${input.image}@${version}`;
  upsertSearchAttributes([{ key: VERSION_KEY, value: version }]);
  const { plan } = probe;
  details.headline = `Publish ${input.image} ${version} (${formatBytes(plan.sizeBytes)} ${probe.format.toUpperCase()}) from ${probe.origin}`;
  progress.bytesTotal = plan.sizeBytes;
  progress.blocksTotal = plan.blockCount;

  details.show(`claiming ${ref}`);
  const claim = await quick.claimVersion.executeWithOptions({ summary: `claim ${ref}` }, [
    { image: input.image, version, format: probe.format, plan, owner },
  ]);
  if (claim.state === 'available') return republish(transfer, input, { plan, existing: claim.existing }, details);
  const { location } = claim;

  let result: PublishResult;
  try {
    progress.phase = 'staging';
    progress.startedFrom = await startFromEarlier({ image: input.image, version, location, plan, owner }, (line) =>
      details.show(line),
    );
    const { metadata, ...digest } = await stageAndInspect(transfer, input, probe, location, details, ref);
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
      owner,
    };
    const etag = await commit(transfer, commitInput, probe.rangeFanOut, details);
    // Runs from this patch on sign what they committed before it is available: agents deploy only signed bytes.
    let provenance: SignOutput | undefined;
    if (patched('publish-signs-provenance')) {
      provenance = await quick.signProvenance.executeWithOptions({ summary: `sign ${ref}` }, [
        {
          image: input.image,
          version,
          format: probe.format,
          sha256: digest.sha256,
          sizeBytes: plan.sizeBytes,
          blocks: { size: plan.blockSize, listSha256: digest.blockListDigest },
          metadata,
          source: input.source,
          location,
          owner,
        },
      ]);
    }
    progress.phase = 'cataloging';
    details.show(`recording the metadata${provenance ? ' and signature' : ''} of ${ref} and marking it available`);
    const available = await quick.markAvailable.executeWithOptions({ summary: `mark ${ref} available` }, [
      { image: input.image, version, sha256: digest.sha256, metadata, owner, etag, ...(provenance ? { provenance } : {}) },
    ]);
    const sent = { bytes: progress.bytesUploaded ?? 0, blocks: progress.blocksUploaded };
    result = { ...available, sent: progress.startedFrom ? { ...sent, from: progress.startedFrom } : sent };
    progress.done = [`published ${ref}: available`];
  } catch (err) {
    const cancelled = wasCancelled(err, byScope);
    progress.phase = cancelled ? 'cancelling' : 'failed';
    const shown = asFailure(err);
    const reason = cancelled ? 'cancelled' : shown instanceof Error ? shown.message : String(shown);
    details.show(`${progress.phase}: removing what this run wrote`, cancelled ? '' : reason);
    try {
      const abandon = byScope ? cleanup.abandonPublish : quick.abandonPublish;
      const abandoned = await CancellationScope.nonCancellable(() =>
        abandon.executeWithOptions({ summary: `remove what this run wrote for ${ref}` }, [
          {
            image: input.image,
            version,
            location,
            status: cancelled ? 'cancelled' : 'failed',
            error: reason.slice(0, 500),
            owner,
          },
        ]),
      );
      progress.cleanup = abandoned.removed;
    } catch (cleanupErr) {
      // The failure that ended the run is what the operator needs; a cleanup that could not finish is noted.
      progress.cleanup = [`cleanup did not finish: ${cleanupErr instanceof Error ? cleanupErr.message : String(cleanupErr)}`];
    }
    throw err;
  }
  // Runs that began before publishes noted the overlap go straight on.
  return distribute(transfer, input, result, details, patched('publish-overlap'));
}

/** A version available already: the source must be the very bytes published, then the run distributes it as a publish does. */
async function republish(
  transfer: Transfers,
  input: PublishInput,
  published: { plan: ProbeResult['plan']; existing: PublishResult },
  details: Details,
): Promise<PublishResult> {
  const { existing } = published;
  const ref = `${existing.image}@${existing.version}`;
  details.show(`${ref} is already published: comparing the source with it`);
  const { sha256 } = await transfer.inspectSource.executeWithOptions(
    { summary: `compare ${input.source} with the published ${ref}` },
    [{ source: input.source, plan: published.plan, image: existing.image }],
  );
  requirePinnedDigest(input, sha256);
  if (sha256 !== existing.sha256) {
    throw ApplicationFailure.nonRetryable(
      `${ref} is already published with SHA-256 ${existing.sha256}; the source's is ${sha256}`,
      'VersionConflict',
    );
  }
  return distribute(transfer, input, { ...existing, sent: { bytes: 0, blocks: 0 } }, details);
}

/**
 * Stages every block range while one pass hashes and inspects the whole image, in one cancellation
 * scope: the first failure cancels the rest and waits until every transfer has stopped, so nothing is
 * still writing when the caller cleans up, and the run fails with that first failure's type.
 */
async function stageAndInspect(
  transfer: Transfers,
  { source, image }: Pick<PublishInput, 'source' | 'image'>,
  probe: ProbeResult,
  location: BlobLocation,
  details: Details,
  ref: string,
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
    details.inspecting = true;
    details.showStaging();
    const inspecting = failFast(
      transfer.inspectSource.executeWithOptions({ summary: `inspect ${ref}: SHA-256 and metadata of ${source}` }, [
        { source, plan, pin: probe.sourceVersion, image },
      ]),
    ).then((inspection) => {
      details.inspecting = false;
      details.showStaging();
      return inspection;
    });
    const staging = stageRanges(
      transfer,
      { source, pin: probe.sourceVersion, location, plan },
      planRanges(plan.blockCount),
      probe.rangeFanOut,
      details,
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
  details: Details,
  failFast: <T>(work: Promise<T>) => Promise<T> = (work) => work,
): Promise<void> {
  const { plan } = target;
  const { progress } = details;
  await runPool(ranges, fanOut, async (range) => {
    const last = range.first + range.count - 1;
    const staged = await failFast(
      transfer.stageBlockRange.executeWithOptions(
        { summary: `stage blocks ${range.first}–${last} of ${target.location.blob} to ${target.location.storage}` },
        [{ ...target, range }],
      ),
    );
    progress.blocksStaged = Math.min(plan.blockCount, progress.blocksStaged + range.count);
    progress.bytesStaged = Math.min(plan.sizeBytes, progress.bytesStaged + range.count * plan.blockSize);
    progress.blocksUploaded += staged.uploaded;
    progress.blocksReused += staged.reused;
    progress.bytesUploaded = (progress.bytesUploaded ?? 0) + staged.bytesUploaded;
    details.showStaging();
  });
}

/** Commits the block list; blocks storage no longer holds (expired, or discarded by another writer) are staged again first. */
async function commit(transfer: Transfers, input: CommitInput, fanOut: number, details: Details): Promise<string> {
  for (let round = 0; ; round++) {
    const blocks = `${plural(input.plan.blockCount, 'block')} of ${input.image}@${input.version}`;
    details.show(round === 0 ? `committing ${blocks}` : `committing ${blocks} again, after staging lost blocks`);
    const out = await transfer.commitBlocks.executeWithOptions({ summary: `commit ${blocks} to ${input.location.storage}` }, [
      input,
    ]);
    if (out.committed) return out.etag;
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
      details,
    );
  }
}

/** After the version is available: note its overlap (if `overlap`), copy it to every replica location, then deploy it if asked. */
async function distribute(
  transfer: Transfers,
  input: PublishInput,
  result: PublishResult,
  details: Details,
  overlap = false,
): Promise<PublishResult> {
  const { progress } = details;
  const ref = `${result.image}@${result.version}`;
  progress.done ??= [`${ref} was published already: available`];
  progress.phase = 'replicating';
  details.show(`${ref} is available`, 'replicating');
  const replicas = await replicate(transfer, result, details, overlap ? () => noteOverlap(result) : undefined);
  const replicatedTo = replicas.length > 0 ? `replicated to ${replicas.join(', ')}` : '';
  if (!deploysAnywhere(input)) {
    progress.phase = 'done';
    details.show(`published ${ref}`, replicatedTo);
    return result;
  }
  progress.phase = 'deploying';
  const workflowId = deployWorkflowId(result.image, result.version, workflowInfo().workflowId);
  progress.deploy = workflowId;
  const targets = describeSddcs(input.deployTo);
  details.show(`published ${ref}`, replicatedTo, `deploying to ${targets} (workflow ${workflowId})`);
  let deployed: DeployResult;
  try {
    deployed = await executeChild(DeployToSDDCs, {
      args: [
        {
          image: result.image,
          version: result.version,
          sddcs: input.deployTo,
          ...(input.deployAllOrNothing ? { allOrNothing: true } : {}),
        },
      ],
      workflowId,
      staticSummary: `Deploy ${result.image} ${result.version} to ${targets}`,
      // A terminated or reset publish lets its deploy clean up and release its lease; older runs replay as they ran.
      ...(patched('publish-deploy-request-cancel') ? { parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL } : {}),
    });
  } catch (err) {
    // The version is published either way: an incomplete deploy, or an all-or-nothing one refused for want of
    // an agent (its details have the rows too), is reported in the result, not as a failed publish.
    const cause = err instanceof ChildWorkflowFailure ? err.cause : undefined;
    const reported = ['DeployIncomplete', ...(input.deployAllOrNothing ? ['NoAgent'] : [])];
    if (!(cause instanceof ApplicationFailure) || !reported.includes(cause.type ?? '')) throw err;
    const details: unknown = cause.details?.[0];
    const results = (details as Partial<DeployResult> | undefined)?.results;
    const counts = (details as Partial<DeployResult> | undefined)?.counts;
    deployed = { image: result.image, version: result.version, results: Array.isArray(results) ? results : [], counts };
  }
  progress.phase = 'done';
  const failed = deployed.results.filter((r) => r.status === 'failed').map((r) => r.sddc);
  const counts = deployed.counts ?? countStatuses(deployed.results);
  // "all" is counted once the deploy has said how many SDDCs that was.
  const total = input.deployTo === ALL_SDDCS ? Object.values(counts).reduce((n, c) => n + (c ?? 0), 0) : input.deployTo.length;
  details.show(`published ${ref}`, replicatedTo, outcomeLine('deployed', counts, total, failed));
  return { ...result, deploy: { workflowId, results: deployed.results, counts: deployed.counts } };
}

/**
 * Notes how many blocks the new version shares with the previous one. The version is available either
 * way: an overlap that cannot be read (say, the previous blob is gone) is only left unnoted.
 */
async function noteOverlap(result: PublishResult): Promise<void> {
  try {
    await quick.noteOverlap.executeWithOptions(
      { summary: `blocks ${result.image}@${result.version} shares with the previous version` },
      [{ image: result.image, version: result.version }],
    );
  } catch (err) {
    if (isCancellation(err)) throw err;
  }
}

/** Whether the publish deploys once done: to "all", or to a list that names some SDDC. */
function deploysAnywhere(input: PublishInput): input is PublishInput & Required<Pick<PublishInput, 'deployTo'>> {
  return input.deployTo === ALL_SDDCS || (input.deployTo?.length ?? 0) > 0;
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

/** Said to the CLI's users and to those who start the workflow themselves. */
const GIVE_VERSION = 'give one (`vmhub publish ... --version 1.2.3`, or "version": "1.2.3" in the workflow input)';

/** The version asked for, else the one the image declares, if that is a semantic version. */
function resolveVersion(asked: string | undefined, declared: string | undefined): string {
  if (asked !== undefined) return validateVersion(asked);
  if (declared !== undefined && isSemver(declared)) return declared;
  throw ApplicationFailure.nonRetryable(
    declared === undefined
      ? `no version given and the image declares none; ${GIVE_VERSION}`
      : `no version given and the image declares "${declared}", which is not a semantic version; ${GIVE_VERSION}`,
    'InvalidInput',
  );
}
