import type { Log } from '../engine/liveness';
import { inSpan } from '../observability/spans';
import { VmhubError } from '../shared/errors';
import { CONTENT_TYPES, type ImageFormat } from '../shared/image-format';
import { letFinish } from '../engine/signals';
import type { ImageSource } from '../source/source';
import { blockDigest, blockId, blockListDigest, parseBlockId } from '../storage/block-ids';
import { blockBounds, rangesOf, type BlockPlan, type BlockRange } from '../shared/block-plan';
import { isBlockStoreError, unlessNotFound, type BlobProperties, type BlockStore } from '../storage/block-store';
import type { SourceDigest } from './inspect-image';
import { metrics } from '../observability/metrics';

/** A commit either happened, or names the ranges whose blocks are no longer staged, to stage again. */
export type CommitOutput = { committed: true; etag: string } | { committed: false; missing: BlockRange[] };

export interface CommitStaged {
  store: BlockStore;
  /** The store's location ID, for the metrics. */
  location: string;
  blob: string;
  plan: BlockPlan;
  format: ImageFormat;
  digest: SourceDigest;
  image: string;
  version: string;
  /** The run committing: recorded on the blob, so a commit whose answer was lost is recognised. */
  runId: string;
  signal: AbortSignal;
  /** Opens the source (pinned to what the probe saw) for the time fn runs. */
  withSource: (fn: (s: ImageSource) => Promise<void>) => Promise<void>;
}

/**
 * Commits the staged blocks in order, once they are the bytes the hashing pass saw; verifies the size.
 * Blocks no longer staged are reported for staging again rather than retried blind.
 */
export function commitStaged(input: CommitStaged, log: Log): Promise<CommitOutput> {
  const facts = { image: input.image, version: input.version, bytes: input.plan.sizeBytes };
  return inSpan('vmhub.commit', facts, () => commit(input, log));
}

async function commit(input: CommitStaged, log: Log): Promise<CommitOutput> {
  const { store, blob, plan, digest, signal } = input;
  const committed = await unlessNotFound(store.getProperties(blob, { abortSignal: signal }));
  if (isThisCommit(committed, input) && committed.contentLength === plan.sizeBytes) {
    return { committed: true, etag: committed.etag };
  }
  const staged = await stagedByIndex(store, blob, plan, signal);
  const missing: number[] = [];
  for (let i = 0; i < plan.blockCount; i++) if (!staged.has(i)) missing.push(i);
  if (missing.length > 0) {
    log.warn('blocks are no longer staged', { missing: missing.length });
    return { committed: false, missing: rangesOf(missing) };
  }
  const ids: string[] = [];
  const ambiguous: number[] = [];
  for (let i = 0; i < plan.blockCount; i++) {
    const candidates = staged.get(i)!;
    if (candidates.length > 1) ambiguous.push(i);
    ids.push(candidates[0]);
  }
  if (ambiguous.length > 0 && blockListDigest(ids) !== digest.blockListDigest) {
    // Blocks an earlier attempt staged with other bytes, or a copied block beside a staged one: the source decides.
    await input.withSource(async (s) => {
      for (const i of ambiguous) {
        const { start, end } = blockBounds(plan, i);
        ids[i] = blockId(i, await blockDigest(await s.read(start, end, signal)));
      }
    });
  }
  if (blockListDigest(ids) !== digest.blockListDigest) {
    throw new VmhubError('SourceChanged', 'the source changed while it was being published; start the publish again');
  }
  const response = await letFinish(signal, (abortSignal) =>
    store.commitBlocks(blob, ids, {
      abortSignal,
      // Whatever another writer did to the blob since it was read makes this commit fail, not overwrite.
      conditions: committed ? { ifMatch: committed.etag } : { ifNoneMatch: '*' },
      contentType: CONTENT_TYPES[input.format],
      metadata: { sha256: digest.sha256, image: input.image, version: input.version, run: input.runId },
    }),
  ).catch(async (err: unknown) => {
    if (!isBlockStoreError(err, 'conflict', 'precondition-failed')) throw err;
    // The SDK retries a request whose answer was lost: the blob may hold this very commit.
    const now = await unlessNotFound(store.getProperties(blob, { abortSignal: signal }));
    if (isThisCommit(now, input)) return { etag: now.etag };
    throw new VmhubError('VersionConflict', `another writer changed ${blob} during the commit`);
  });
  metrics.committedBytes.inc({ image: input.image, location: input.location }, plan.sizeBytes);
  const props = await store.getProperties(blob, { abortSignal: signal });
  if (props.contentLength !== plan.sizeBytes) {
    throw new VmhubError('StorageMismatch', `committed blob is ${props.contentLength} bytes, expected ${plan.sizeBytes}`);
  }
  return { committed: true, etag: response.etag };
}

/** Whether the committed blob is this run's commit of these bytes. */
function isThisCommit(props: BlobProperties | undefined, input: CommitStaged): props is BlobProperties {
  return props?.metadata.sha256 === input.digest.sha256 && props.metadata.run === input.runId;
}

/**
 * The block IDs of the plan's blocks, by index: the staged ones first (more than one where attempts staged
 * other bytes), then the committed one of the earlier version the blob started as a copy of (./seed). A
 * block is staged at an index mostly because the copy's block there is not the source's; the commit's
 * check against the hashing pass decides.
 */
async function stagedByIndex(
  store: BlockStore,
  blob: string,
  plan: BlockPlan,
  signal: AbortSignal,
): Promise<Map<number, string[]>> {
  const [staged, committed] = await Promise.all([
    unlessNotFound(store.uncommittedBlocks(blob, { abortSignal: signal })),
    unlessNotFound(store.committedBlocks(blob, { abortSignal: signal })),
  ]);
  const byIndex = new Map<number, string[]>();
  for (const b of [...(staged ?? []), ...(committed ?? [])]) {
    const parsed = parseBlockId(b.name);
    if (!parsed || parsed.index >= plan.blockCount) continue;
    const ids = byIndex.get(parsed.index) ?? [];
    if (!ids.includes(b.name)) byIndex.set(parsed.index, [...ids, b.name]);
  }
  return byIndex;
}
