import type { Liveness, Log } from '../engine/liveness';
import { inSpan } from '../observability/spans';
import { withListenerRoom, letFinish } from '../engine/signals';
import type { ImageSource } from '../source/source';
import { blockDigestOf, blockId } from '../storage/block-ids';
import { blockBounds, type BlockPlan, type BlockRange } from '../shared/block-plan';
import { unlessNotFound, type BlockStore } from '../storage/block-store';
import type { Claim, HeldBytes, PublishTap } from './block-tap';
import type { PublishWorkspace, TapKey } from './workspace';
import { metrics } from '../observability/metrics';
import { imageOfBlob } from '../shared/publish-input';

export interface StageOutput {
  uploaded: number;
  reused: number;
  bytesUploaded: number;
}

/**
 * Progress of a staging attempt: every block before `next` is staged (a retry resumes there);
 * `bytesDone` of the range's `bytesTotal` are staged, for progress readers (see src/cli/run-progress.ts).
 */
export interface StageCheckpoint {
  next: number;
  uploaded: number;
  reused: number;
  bytesUploaded: number;
  phase?: 'staging';
  bytesDone?: number;
  bytesTotal?: number;
}

export interface StageRange {
  source: ImageSource;
  tapKey: TapKey;
  store: BlockStore;
  /** The store's location ID, for the metrics. */
  location: string;
  blob: string;
  plan: BlockPlan;
  range: BlockRange;
  /** The checkpoint an earlier attempt reached. */
  resumed?: StageCheckpoint;
  signal: AbortSignal;
}

/** Bytes of blocks first … end-1 of the plan. */
function bytesOfBlocks(plan: BlockPlan, first: number, end: number): number {
  return end > first ? blockBounds(plan, end - 1).end - blockBounds(plan, first).start : 0;
}

/** Runs `lanes` copies of lane until all have stopped; the first failure stops the others and is rethrown. */
async function runLanes(lanes: number, signal: AbortSignal, lane: (signal: AbortSignal) => Promise<void>): Promise<void> {
  const stop = new AbortController();
  // Every lane's claim, read and write listen to it at once.
  const laneSignal = withListenerRoom(AbortSignal.any([signal, stop.signal]), lanes);
  let first: { error: unknown } | undefined;
  await Promise.all(
    Array.from({ length: lanes }, () =>
      lane(laneSignal).catch((error: unknown) => {
        first ??= { error };
        stop.abort(error);
      }),
    ),
  );
  // A cancel is reported as the signal's own reason (the SDK's, in an activity), which is what makes the activity end as cancelled.
  if (signal.aborted) throw signal.reason;
  if (first) throw first.error;
}

/**
 * Stages a contiguous range of blocks. Its lanes take part in this publish's staging on this worker:
 * up to fan-out × concurrency uploads in flight, lowest blocks first across the ranges running here,
 * each block read once, digested on a hashing thread, offered to the inspection after its upload.
 * Blocks already staged with the same bytes (same ID) are skipped, and a retried attempt resumes after
 * the last checkpoint. Every read waits for the worker's byte budget.
 */
export async function stageRange(
  work: PublishWorkspace,
  input: StageRange,
  liveness: Liveness<StageCheckpoint>,
  log: Log,
): Promise<StageOutput> {
  const { plan, resumed, signal } = input;
  // Blocks the blob holds under the same ID need no upload: staged by an earlier attempt, or committed in
  // the earlier version the blob started as a copy of (./seed).
  const staged = new Set<string>();
  const [uncommitted, committed] = await Promise.all([
    unlessNotFound(input.store.uncommittedBlocks(input.blob, { abortSignal: signal })),
    unlessNotFound(input.store.committedBlocks(input.blob, { abortSignal: signal })),
  ]);
  for (const b of [...(uncommitted ?? []), ...(committed ?? [])]) staged.add(b.name);
  // A blob that starts as a copy of an earlier version takes few uploads: its digests may use every core,
  // while the blocks it reuses are at least as many as those it uploads, in flight included.
  const reuse = { seeded: (committed?.length ?? 0) > 0, uploading: 0 };

  const progress: StageCheckpoint = resumed ?? { next: input.range.first, uploaded: 0, reused: 0, bytesUploaded: 0 };
  if (resumed) log.info('resuming staging', { range: input.range, next: resumed.next, alreadyStaged: staged.size });
  const { first, count } = input.range;
  progress.phase = 'staging';
  progress.bytesTotal = bytesOfBlocks(plan, first, first + count);
  // Blocks this attempt stages after `next` are added as each one ends, whatever the order.
  progress.bytesDone = bytesOfBlocks(plan, first, progress.next);
  const tap = work.tap(input.tapKey, plan);
  const range = tap.register(input.range, progress.next);
  const beat = () => {
    progress.next = range.firstNotDone();
    liveness.beat(progress);
  };
  const stage = (claim: Claim, laneSignal: AbortSignal) =>
    stageBlock(work, input, { tap, staged, progress, reuse }, claim, laneSignal);

  // A slow block must not look like a dead worker: beat on a timer as well as after each block.
  try {
    await liveness.keepBeating(
      () =>
        runLanes(work.slots, signal, async (laneSignal) => {
          for (let claim; (claim = await tap.claim(range, laneSignal));) {
            try {
              await stage(claim, laneSignal);
            } catch (err) {
              tap.giveBack(claim);
              throw err;
            }
            tap.complete(claim);
            const { start, end } = blockBounds(plan, claim.index);
            progress.bytesDone = (progress.bytesDone ?? 0) + end - start;
            beat();
          }
        }),
      beat,
    );
  } finally {
    tap.unregister(range);
  }
  return { uploaded: progress.uploaded, reused: progress.reused, bytesUploaded: progress.bytesUploaded };
}

/** Reads and digests a claimed block, offers it to the tap, and uploads it unless it is staged already. */
async function stageBlock(
  work: PublishWorkspace,
  input: StageRange,
  state: { tap: PublishTap; staged: Set<string>; progress: StageCheckpoint; reuse: { seeded: boolean; uploading: number } },
  claim: Claim,
  laneSignal: AbortSignal,
): Promise<void> {
  const i = claim.index;
  const { start, end } = blockBounds(input.plan, i);
  const held: HeldBytes = await inSpan('vmhub.source.read', { bytes: end - start }, () =>
    work.readBlock(input.source, input.plan, i, laneSignal),
  );
  const { progress } = state;
  try {
    const { reuse } = state;
    const everyCore = reuse.seeded && progress.uploaded + reuse.uploading <= progress.reused;
    const digest = blockDigestOf(await work.hashes.sha256(held.bytes, { everyCore }));
    state.tap.offer(claim, { index: i, digest, held });
    const id = blockId(i, digest);
    if (state.staged.has(id)) {
      progress.reused++;
    } else {
      const { bytes } = held;
      reuse.uploading++;
      try {
        await letFinish(laneSignal, (abortSignal) => input.store.stageBlock(input.blob, id, bytes, { abortSignal }));
      } finally {
        reuse.uploading--;
      }
      progress.uploaded++;
      progress.bytesUploaded += bytes.length;
      metrics.stagedBytes.inc({ image: imageOfBlob(input.blob), location: input.location }, bytes.length);
    }
  } catch (err) {
    // A request that failed may still be reading the bytes: the collector frees them, not us.
    held.pin();
    throw err;
  } finally {
    held.release();
  }
}
