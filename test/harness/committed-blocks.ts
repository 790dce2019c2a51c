import type { KeyObject } from 'node:crypto';
import { signStatement } from '../../src/provenance/statement';
import { writeStoredEnvelope } from '../../src/provenance/stored';
import { blockDigest, blockId, blockListDigest } from '../../src/storage/block-ids';
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

/**
 * Signs a version as publish does, its blocks listed by `ids` (none: as publish signed before blocks
 * were), and stores the envelope beside its blob.
 */
export async function signAsPublished(
  store: BlockStore,
  blob: string,
  version: { image: string; version: string; sha256?: string; sizeBytes: number },
  blocks: { ids: string[]; size: number } | undefined,
  key: KeyObject,
): Promise<void> {
  const envelope = signStatement(
    {
      image: version.image,
      version: version.version,
      sha256: version.sha256!,
      sizeBytes: version.sizeBytes,
      format: 'iso',
      members: [],
      ...(blocks ? { blocks: { size: blocks.size, listSha256: blockListDigest(blocks.ids) } } : {}),
      source: 'test',
      run: { workflowId: 'test', runId: 'test' },
      publishedAt: new Date().toISOString(),
    },
    key,
  );
  await writeStoredEnvelope(store, blob, envelope);
}
