import type { Catalog } from '../catalog/catalog';
import type { ImageVersionRecord, ReplicaRecord } from '../catalog/image-records';
import { runPool } from '../shared/concurrency';
import type { Liveness, Log } from '../engine/liveness';
import { VmhubError } from '../shared/errors';
import { letFinish } from '../engine/signals';
import { blockDigestOf, blockListDigest, parseBlockId } from '../storage/block-ids';
import type { Block, BlockStore, BlockStores } from '../storage/block-store';
import { hashPool } from '../storage/hashing';
import { copyStoredEnvelope } from '../provenance/stored';
import { findLocation } from '../topology/topology';

export interface ReplicateInput {
  image: string;
  version: string;
  /** The replica storage location to copy to. */
  location: string;
}

/**
 * Progress of a replication: every block before `next` is on the replica (a retry resumes there),
 * `copied` of them by this run; `bytesDone` of `bytesTotal` are there, for progress readers.
 */
export interface ReplicateCheckpoint {
  next: number;
  copied: number;
  phase?: 'replicating';
  location?: string;
  bytesDone?: number;
  bytesTotal?: number;
}

export interface ReplicateDeps {
  storage: BlockStores;
  catalog: Pick<Catalog, 'versions'>;
  /** Blocks copied at once. */
  concurrency: number;
}

type Available = ImageVersionRecord & { sha256: string };

/** One copy of a blob from the primary to a replica, block by block. */
interface BlobCopy {
  record: Available;
  blob: string;
  source: BlockStore;
  replica: BlockStore;
  signal: AbortSignal;
}

/**
 * Copies a committed image from the primary to a replica location with a streamed ranged copy: each
 * committed block is read from the primary, its bytes checked against the digest in its block ID, and
 * staged on the replica under the same ID; then the replica commits the same block list. Equal block
 * lists (and sizes) mean equal bytes, so the replica is verified without reading it back. Blocks already
 * staged on the replica are skipped, and a retry resumes from `resumed`.
 */
export async function replicateImage(
  deps: ReplicateDeps,
  input: ReplicateInput,
  options: { resumed?: ReplicateCheckpoint; signal: AbortSignal; liveness: Liveness<ReplicateCheckpoint>; log: Log },
): Promise<ReplicaRecord> {
  const { storage, catalog } = deps;
  const { signal } = options;
  const record = await catalog.versions.get(input.image, input.version);
  if (!record || record.status !== 'available' || !record.sha256) {
    throw new VmhubError('UnknownImage', `${input.image}@${input.version} is not an available version`);
  }
  const target = findLocation(storage.topology, input.location);
  if (target.role !== 'replica') throw new VmhubError('InvalidInput', `${input.location} is not a replica location`);
  const copy: BlobCopy = {
    record: { ...record, sha256: record.sha256 },
    blob: record.location.blob,
    source: storage.store(record.location.storage),
    replica: storage.store(target.id),
    signal,
  };
  await copy.replica.createContainer({ abortSignal: signal });
  // The signed provenance travels with the image: agents reading this replica read it here.
  await copyStoredEnvelope(copy.source, copy.replica, copy.blob, signal);

  const existing = await copy.replica.getProperties(copy.blob, { abortSignal: signal }).catch(() => undefined);
  const recordVerified = async (etag: string | undefined): Promise<ReplicaRecord> => {
    const verified: ReplicaRecord = {
      location: target.id,
      status: 'verified',
      etag,
      sha256: record.sha256,
      verifiedAt: new Date(),
    };
    await catalog.versions.setReplica(input.image, input.version, verified);
    return verified;
  };
  if (existing?.metadata.sha256 === record.sha256 && existing.contentLength === record.sizeBytes) {
    return recordVerified(existing.etag);
  }
  await catalog.versions.setReplica(input.image, input.version, { location: target.id, status: 'pending' });

  const blocks = await listBlocks(copy);
  const progress: ReplicateCheckpoint = options.resumed ?? { next: 0, copied: 0 };
  progress.phase = 'replicating';
  progress.location = target.id;
  progress.bytesTotal = record.sizeBytes;
  // Blocks done out of order count as they end; a retry starts again from `next`.
  progress.bytesDone = blocks.offsets[progress.next] ?? record.sizeBytes;
  await options.liveness.keepBeating(
    () => copyBlocks(copy, blocks, progress, deps.concurrency, options.liveness),
    () => options.liveness.beat(progress),
  );

  const ids = blocks.committed.map((b) => b.name);
  const response = await copy.replica.commitBlocks(copy.blob, ids, {
    abortSignal: signal,
    metadata: { sha256: record.sha256, image: input.image, version: input.version },
    contentType: (await copy.source.getProperties(copy.blob, { abortSignal: signal })).contentType,
  });
  const after = await copy.replica.committedBlocks(copy.blob, { abortSignal: signal });
  const props = await copy.replica.getProperties(copy.blob, { abortSignal: signal });
  if (blockListDigest(after.map((b) => b.name)) !== blockListDigest(ids) || props.contentLength !== record.sizeBytes) {
    throw new VmhubError('StorageMismatch', `replica ${target.id} does not hold the committed block list after commit`);
  }
  options.log.info('replicated', {
    image: input.image,
    version: input.version,
    location: target.id,
    blocksCopied: progress.copied,
  });
  return recordVerified(response.etag);
}

/** What the copy works from: the primary's committed blocks with their offsets, and the blocks the replica has staged. */
interface CopyBlocks {
  committed: Block[];
  offsets: number[];
  staged: Set<string>;
}

async function listBlocks({ record, blob, source, replica, signal }: BlobCopy): Promise<CopyBlocks> {
  const committed = await source.committedBlocks(blob, { abortSignal: signal });
  const staged = new Set(
    ((await replica.uncommittedBlocks(blob, { abortSignal: signal }).catch(() => undefined)) ?? []).map((b) => b.name),
  );
  const offsets: number[] = [];
  let offset = 0;
  for (const b of committed) {
    offsets.push(offset);
    offset += b.size;
  }
  if (offset !== record.sizeBytes) {
    throw new VmhubError('StorageMismatch', `primary blob is ${offset} bytes, the catalog says ${record.sizeBytes}`);
  }
  return { committed, offsets, staged };
}

/** Stages on the replica every committed block from `progress.next` on that it does not have staged yet. */
async function copyBlocks(
  copy: BlobCopy,
  { committed, offsets, staged }: CopyBlocks,
  progress: ReplicateCheckpoint,
  concurrency: number,
  liveness: Liveness<ReplicateCheckpoint>,
): Promise<void> {
  const { record, blob, source, replica, signal } = copy;
  const done = new Set<number>();
  const indices = committed.map((_, i) => i).filter((i) => i >= progress.next);
  // Block buffers go round: read into, moved to a hashing thread and back, staged, then read into
  // again, so no block is zero-filled, copied to be hashed or left to the collector.
  const spare: Buffer[] = [];
  await runPool(indices, concurrency, async (i) => {
    const block = committed[i];
    const size = block.size;
    if (!staged.has(block.name)) {
      const into = spare.find((b) => b.length === size);
      if (into) spare.splice(spare.indexOf(into), 1);
      const read = await source.readInto(blob, into ?? Buffer.allocUnsafe(size), offsets[i], { abortSignal: signal });
      const { hex, bytes } = await hashPool().sha256Moving(read);
      const expected = parseBlockId(block.name)?.digest;
      if (expected !== undefined && blockDigestOf(hex) !== expected) {
        throw new VmhubError('StorageMismatch', `block ${i} read from ${record.location.storage} does not match its digest`);
      }
      await letFinish(signal, (abortSignal) => replica.stageBlock(blob, block.name, bytes, { abortSignal }));
      spare.push(bytes);
      progress.copied++;
    }
    done.add(i);
    while (done.has(progress.next)) done.delete(progress.next++);
    progress.bytesDone = (progress.bytesDone ?? 0) + size;
    liveness.beat(progress);
  });
}
