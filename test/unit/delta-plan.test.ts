import type { BlockIndex, LocalBase } from '../../src/deploy/block-index';
import { chooseBase, planDelta, reusableBytes, segmentsOf, sharedContent } from '../../src/deploy/delta-plan';

const d = (n: number) => n.toString(16).padStart(32, '0');

function index(digests: number[], blockSize = 4, sizeBytes = digests.length * blockSize): BlockIndex {
  return { sha256: 'a'.repeat(64), sizeBytes, blockSize, digests: digests.map(d) };
}

const base = (version: string, i: BlockIndex): LocalBase => ({ file: `/ds/img/${version}/img.iso`, version, index: i });

describe('planDelta', () => {
  it('copies the blocks whose digests the base holds, from where the base holds them, and fetches the others', () => {
    const plan = planDelta(index([1, 2, 9, 4, 3]), index([1, 2, 3, 4]))!;
    expect(plan.copyFrom).toEqual([0, 4, -1, 12, 8]);
    expect(reusableBytes(plan)).toBe(16);
  });

  it('shares nothing across block sizes', () => {
    expect(planDelta(index([1, 2], 4), index([1, 2], 8))).toBeUndefined();
  });

  it('copies a short last block only from a block of the same length', () => {
    // Same digest, other length: cannot be the same bytes; a real digest collision of lengths is refused.
    const plan = planDelta(index([1, 2], 4, 6), index([1, 2], 4, 8))!;
    expect(plan.copyFrom).toEqual([0, -1]);
    expect(reusableBytes(plan)).toBe(4);
    expect(planDelta(index([1, 2], 4, 6), index([1, 2], 4, 6))!.copyFrom).toEqual([0, 4]);
  });

  it('a new version with no shared block copies nothing', () => {
    const plan = planDelta(index([5, 6, 7]), index([1, 2, 3]))!;
    expect(plan.copyFrom).toEqual([-1, -1, -1]);
    expect(reusableBytes(plan)).toBe(0);
  });
});

describe('sharedContent', () => {
  it.each<[string, BlockIndex, BlockIndex, { blocks: number; bytes: number }]>([
    [
      'blocks found anywhere in the base, each counted in the target',
      index([1, 2, 9, 1]),
      index([2, 1]),
      { blocks: 3, bytes: 12 },
    ],
    ['a short last block only against one of its length', index([1, 2], 4, 6), index([1, 2], 4, 8), { blocks: 1, bytes: 4 }],
    ['nothing across block sizes', index([1, 2], 4), index([1, 2], 8), { blocks: 0, bytes: 0 }],
    ['nothing when no digest is shared', index([5, 6]), index([1, 2]), { blocks: 0, bytes: 0 }],
  ])('%s', (_case, target, base, expected) => {
    expect(sharedContent(target, base)).toEqual(expected);
  });
});

describe('chooseBase', () => {
  it('picks the base that leaves the fewest bytes to fetch, among those with the same block size', () => {
    const target = index([1, 2, 3, 4]);
    const chosen = chooseBase(target, [
      base('0.9.0', index([1, 0, 0, 0])),
      base('1.0.0', index([1, 2, 3, 0])),
      base('1.0.0-wide', index([1, 2, 3, 4], 8, 16)),
    ]);
    expect(chosen?.base.version).toBe('1.0.0');
    expect(chosen?.plan.copyFrom).toEqual([0, 4, 8, -1]);
  });

  it('chooses none when no base shares a block', () => {
    expect(chooseBase(index([1, 2]), [base('1.0.0', index([3, 4]))])).toBeUndefined();
    expect(chooseBase(index([1, 2]), [])).toBeUndefined();
  });
});

describe('segmentsOf', () => {
  const plan = planDelta(index([1, 9, 8, 4, 5], 4, 18), index([1, 2, 3, 4, 5], 4, 18))!;

  it('merges consecutive fetched blocks into one range and keeps each copied block on its own', () => {
    expect(segmentsOf(plan, 0, 18)).toEqual([
      { kind: 'copy', start: 0, end: 4, block: { start: 0, end: 4, baseStart: 0, digest: d(1) } },
      { kind: 'fetch', start: 4, end: 12 },
      { kind: 'copy', start: 12, end: 16, block: { start: 12, end: 16, baseStart: 12, digest: d(4) } },
      { kind: 'copy', start: 16, end: 18, block: { start: 16, end: 18, baseStart: 16, digest: d(5) } },
    ]);
  });

  it('cuts blocks at a range that does not fall on block boundaries, keeping the whole block to check', () => {
    expect(segmentsOf(plan, 2, 14)).toEqual([
      { kind: 'copy', start: 2, end: 4, block: { start: 0, end: 4, baseStart: 0, digest: d(1) } },
      { kind: 'fetch', start: 4, end: 12 },
      { kind: 'copy', start: 12, end: 14, block: { start: 12, end: 16, baseStart: 12, digest: d(4) } },
    ]);
  });

  it('covers every byte of a range exactly once', () => {
    for (const [start, end] of [
      [0, 18],
      [3, 17],
      [5, 6],
      [8, 8],
    ]) {
      const segments = segmentsOf(plan, start, end);
      let at = start;
      for (const s of segments) {
        expect(s.start).toBe(at);
        expect(s.end).toBeGreaterThan(s.start);
        at = s.end;
      }
      expect(at).toBe(end);
    }
  });

  it('refuses a range outside the image', () => {
    expect(() => segmentsOf(plan, 0, 19)).toThrow(RangeError);
    expect(() => segmentsOf(plan, -1, 4)).toThrow(RangeError);
  });
});
