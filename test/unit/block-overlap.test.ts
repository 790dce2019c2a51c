import { blockId } from '../../src/storage/block-ids';
import { sharedBlockCount } from '../../src/storage/block-overlap';

const digest = (n: number) => n.toString(16).padStart(32, '0');
const ids = (digests: number[]) => digests.map((d, i) => blockId(i, digest(d)));

describe('sharedBlockCount', () => {
  it('counts the new blocks whose bytes the previous version holds, wherever they sit', () => {
    expect(sharedBlockCount(ids([1, 2, 3, 4]), ids([1, 2, 3, 4]))).toBe(4);
    expect(sharedBlockCount(ids([1, 9, 3, 4]), ids([1, 2, 3, 4]))).toBe(3);
    // A block moved to another index still holds the same bytes.
    expect(sharedBlockCount(ids([4, 3, 2, 1, 5]), ids([1, 2, 3, 4]))).toBe(4);
    expect(sharedBlockCount(ids([7, 8]), ids([1, 2]))).toBe(0);
  });

  it('ignores IDs that carry no digest', () => {
    expect(sharedBlockCount(['bm90LWEtYmxvY2s=', ...ids([1])], ['bm90LWEtYmxvY2s=', ...ids([1])])).toBe(1);
  });
});
