import type { BlockIndex, LocalBase } from './block-index';

/**
 * Which blocks of a new version a delta deploy copies from a version already on the agent's disk, and
 * which it downloads: a block is copied when the base holds a block with the same digest (wherever it is
 * in the base) and the same length. Pure arithmetic over two block indexes.
 */
export interface DeltaPlan {
  blockSize: number;
  sizeBytes: number;
  /** Per block of the new version: the offset in the base file of a block with the same bytes, or -1. */
  copyFrom: number[];
  digests: string[];
}

/** A copied block's place in the new file and in the base, and the digest its bytes must have. */
export interface CopiedBlock {
  start: number;
  end: number;
  baseStart: number;
  digest: string;
}

/** A byte range of the new file, [start, end): downloaded, or copied from (part of) one base block. */
export type Segment =
  { kind: 'fetch'; start: number; end: number } | { kind: 'copy'; start: number; end: number; block: CopiedBlock };

function blockLength(index: Pick<BlockIndex, 'blockSize' | 'sizeBytes'>, i: number): number {
  return Math.min(index.blockSize, index.sizeBytes - i * index.blockSize);
}

/** The plan against one base; undefined when the block sizes differ (no block boundary is shared then). */
export function planDelta(target: BlockIndex, base: BlockIndex): DeltaPlan | undefined {
  if (target.blockSize !== base.blockSize) return undefined;
  const inBase = new Map<string, number>();
  base.digests.forEach((digest, i) => {
    const key = `${digest}:${blockLength(base, i)}`;
    if (!inBase.has(key)) inBase.set(key, i * base.blockSize);
  });
  return {
    blockSize: target.blockSize,
    sizeBytes: target.sizeBytes,
    copyFrom: target.digests.map((digest, i) => inBase.get(`${digest}:${blockLength(target, i)}`) ?? -1),
    digests: target.digests,
  };
}

/** Bytes of the new version the plan copies from the base. */
export function reusableBytes(plan: DeltaPlan): number {
  return plan.copyFrom.reduce((sum, from, i) => (from < 0 ? sum : sum + blockLength(plan, i)), 0);
}

/**
 * The copied blocks that sit at the same offset in the base as in the new version: a copy of the whole
 * base file already holds them where they belong.
 */
export function inPlaceBlocks(plan: DeltaPlan): CopiedBlock[] {
  return plan.copyFrom.flatMap((from, i) =>
    from === i * plan.blockSize
      ? [{ start: from, end: from + blockLength(plan, i), baseStart: from, digest: plan.digests[i] }]
      : [],
  );
}

/**
 * What a holder of `base` already has of `target`: the blocks (and their bytes) a delta deploy would
 * copy instead of fetching. Nothing when the block sizes differ.
 */
export function sharedContent(target: BlockIndex, base: BlockIndex): { blocks: number; bytes: number } {
  const plan = planDelta(target, base);
  if (!plan) return { blocks: 0, bytes: 0 };
  return { blocks: plan.copyFrom.filter((from) => from >= 0).length, bytes: reusableBytes(plan) };
}

/** Of the bases on disk, the one that leaves the fewest bytes to download; none when no block is shared. */
export function chooseBase(target: BlockIndex, bases: readonly LocalBase[]): { base: LocalBase; plan: DeltaPlan } | undefined {
  let best: { base: LocalBase; plan: DeltaPlan; reused: number } | undefined;
  for (const base of bases) {
    const plan = planDelta(target, base.index);
    const reused = plan ? reusableBytes(plan) : 0;
    if (plan && reused > 0 && reused > (best?.reused ?? 0)) best = { base, plan, reused };
  }
  return best && { base: best.base, plan: best.plan };
}

/**
 * The segments of [start, end) in order: each piece of a copied block on its own (its digest is checked
 * as it is read), consecutive downloaded blocks merged into one range, so one request fetches them.
 */
export function segmentsOf(plan: DeltaPlan, start: number, end: number): Segment[] {
  if (start < 0 || end > plan.sizeBytes || start > end) throw new RangeError(`range ${start}–${end} is outside the image`);
  const segments: Segment[] = [];
  for (let i = Math.floor(start / plan.blockSize); i * plan.blockSize < end; i++) {
    const blockStart = i * plan.blockSize;
    const from = Math.max(start, blockStart);
    const to = Math.min(end, blockStart + blockLength(plan, i));
    const last = segments[segments.length - 1];
    if (plan.copyFrom[i] >= 0) {
      const block = {
        start: blockStart,
        end: blockStart + blockLength(plan, i),
        baseStart: plan.copyFrom[i],
        digest: plan.digests[i],
      };
      segments.push({ kind: 'copy', start: from, end: to, block });
    } else if (last?.kind === 'fetch') {
      last.end = to;
    } else {
      segments.push({ kind: 'fetch', start: from, end: to });
    }
  }
  return segments;
}
