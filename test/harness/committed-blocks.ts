import { blockDigest, blockId } from '../../src/storage/block-ids';
import type { BlockStore } from '../../src/storage/block-store';

/** Commits `content` as `blob` in blocks of `blockSize`, under the block IDs publish writes; returns the IDs. */
export async function commitAsPublished(store: BlockStore, blob: string, content: Buffer, blockSize: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i * blockSize < content.length; i++) {
    const bytes = content.subarray(i * blockSize, (i + 1) * blockSize);
    ids.push(blockId(i, await blockDigest(bytes)));
    await store.stageBlock(blob, ids[i], bytes);
  }
  await store.commitBlocks(blob, ids);
  return ids;
}
