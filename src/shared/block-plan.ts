/**
 * The block plan of a staged-block upload: block size, block count, and the ranges staged by one
 * activity each. Pure arithmetic, shared by workflows and activities.
 */
export const MiB = 1024 * 1024;
export const MIN_BLOCK_SIZE = 4 * MiB;
export const MAX_BLOCK_SIZE = 4000 * MiB;
export const MAX_BLOCKS = 50_000;
/** At most this many range activities per publish, so history stays bounded whatever the size. */
export const MAX_RANGES = 256;
export const MIN_BLOCKS_PER_RANGE = 16;

export interface BlockPlan {
  sizeBytes: number;
  blockSize: number;
  blockCount: number;
}

export interface BlockRange {
  first: number;
  count: number;
}

/** Block size: the preferred size, at least 4 MiB, raised in whole MiB until the blob needs at most 50,000 blocks. */
export function planBlocks(sizeBytes: number, preferredBlockSize: number): BlockPlan {
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes < 0) throw new RangeError(`invalid image size ${sizeBytes}`);
  let blockSize = Math.max(MIN_BLOCK_SIZE, Math.ceil(preferredBlockSize / MiB) * MiB);
  const needed = Math.ceil(sizeBytes / MAX_BLOCKS / MiB) * MiB;
  if (needed > blockSize) blockSize = needed;
  if (blockSize > MAX_BLOCK_SIZE) throw new RangeError(`image of ${sizeBytes} bytes is larger than a block blob can hold`);
  return { sizeBytes, blockSize, blockCount: Math.ceil(sizeBytes / blockSize) };
}

/** Contiguous ranges of blocks, one per staging activity: at least 16 blocks each, at most 256 ranges. */
export function planRanges(blockCount: number): BlockRange[] {
  const perRange = Math.max(MIN_BLOCKS_PER_RANGE, Math.ceil(blockCount / MAX_RANGES));
  const ranges: BlockRange[] = [];
  for (let first = 0; first < blockCount; first += perRange)
    ranges.push({ first, count: Math.min(perRange, blockCount - first) });
  return ranges;
}

/** Consecutive block indices, as ranges. */
export function rangesOf(indices: readonly number[]): BlockRange[] {
  const ranges: BlockRange[] = [];
  for (const i of indices) {
    const last = ranges[ranges.length - 1];
    if (last && last.first + last.count === i) last.count++;
    else ranges.push({ first: i, count: 1 });
  }
  return ranges;
}

/** The planned ranges that hold any block of `wanted`: what to stage again, in the plan's own units. */
export function rangesContaining(planned: readonly BlockRange[], wanted: readonly BlockRange[]): BlockRange[] {
  return planned.filter((p) => wanted.some((w) => w.first < p.first + p.count && p.first < w.first + w.count));
}

export function blockBounds(plan: BlockPlan, index: number): { start: number; end: number } {
  const start = index * plan.blockSize;
  return { start, end: Math.min(start + plan.blockSize, plan.sizeBytes) };
}
