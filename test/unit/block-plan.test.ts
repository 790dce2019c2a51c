import { blockDigest, blockId, blockListDigest, parseBlockId } from '../../src/storage/block-ids';
import { blockBounds, MAX_BLOCKS, MAX_RANGES, planBlocks, planRanges } from '../../src/shared/block-plan';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

describe('planBlocks', () => {
  it.each([
    // size, preferred block size, block size, block count
    [0, 8 * MiB, 8 * MiB, 0],
    [1, 8 * MiB, 8 * MiB, 1],
    [8 * MiB, 8 * MiB, 8 * MiB, 1],
    [8 * MiB + 1, 8 * MiB, 8 * MiB, 2],
    [GiB, 8 * MiB, 8 * MiB, 128],
    [GiB, 1 * MiB, 4 * MiB, 256], // never below 4 MiB
    [GiB, 5.5 * MiB, 6 * MiB, 171], // whole MiB
    [1024 * GiB, 8 * MiB, 21 * MiB, 49933], // raised so the blob needs at most 50,000 blocks
    [50_000 * 8 * MiB, 8 * MiB, 8 * MiB, 50_000],
    [50_000 * 8 * MiB + 1, 8 * MiB, 9 * MiB, 44445],
  ])('%d bytes preferring %d → blocks of %d, %d of them', (size, preferred, blockSize, count) => {
    const plan = planBlocks(size, preferred);
    expect(plan).toEqual({ sizeBytes: size, blockSize, blockCount: count });
    expect(plan.blockCount).toBeLessThanOrEqual(MAX_BLOCKS);
  });

  it('rejects sizes a block blob cannot hold', () => {
    expect(() => planBlocks(-1, 8 * MiB)).toThrow(RangeError);
    expect(() => planBlocks(200 * 1024 * GiB, 8 * MiB)).toThrow(/larger than a block blob/);
  });

  it('bounds the last block by the size', () => {
    const plan = planBlocks(10 * MiB, 4 * MiB);
    expect(blockBounds(plan, 0)).toEqual({ start: 0, end: 4 * MiB });
    expect(blockBounds(plan, 2)).toEqual({ start: 8 * MiB, end: 10 * MiB });
  });
});

describe('planRanges', () => {
  it.each([
    [0, 0, 0],
    [5, 1, 5],
    [16, 1, 16],
    [17, 2, 16],
    [128, 8, 16],
    [50_000, MAX_RANGES, 196],
  ])('%d blocks → %d ranges of up to %d', (blocks, ranges, perRange) => {
    const plan = planRanges(blocks);
    expect(plan).toHaveLength(ranges);
    expect(plan.reduce((n, r) => n + r.count, 0)).toBe(blocks);
    if (ranges > 0) expect(plan[0].count).toBe(perRange);
    plan.forEach((r, i) => i > 0 && expect(r.first).toBe(plan[i - 1].first + plan[i - 1].count));
  });
});

describe('block IDs', () => {
  let digest: string;
  beforeAll(async () => {
    digest = await blockDigest(Buffer.from('hello'));
  });

  it('digest the bytes with SHA-256', async () => {
    expect(digest).toBe('2cf24dba5fb0a30e26e83b2ac5b9e29e');
  });

  it('have one length for every index and round-trip', () => {
    const ids = [0, 1, 49_999, 999_999].map((i) => blockId(i, digest));
    expect(new Set(ids.map((id) => id.length)).size).toBe(1);
    expect(parseBlockId(ids[2])).toEqual({ index: 49_999, digest });
  });

  it('bind the bytes: other bytes give another ID at the same index', async () => {
    expect(blockId(3, digest)).not.toBe(blockId(3, await blockDigest(Buffer.from('hellO'))));
  });

  it('reject foreign IDs and out-of-range indices', () => {
    expect(parseBlockId(Buffer.from('something else').toString('base64'))).toBeUndefined();
    expect(() => blockId(1_000_000, digest)).toThrow(RangeError);
  });

  it('list digest depends on order and content', () => {
    const a = blockId(0, digest);
    const b = blockId(1, digest);
    expect(blockListDigest([a, b])).not.toBe(blockListDigest([b, a]));
    expect(blockListDigest([a, b])).toBe(blockListDigest([a, b]));
  });
});
