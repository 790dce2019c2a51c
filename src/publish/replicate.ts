import type { Catalog } from '../catalog/catalog';
import type { ImageVersionRecord, ReplicaRecord } from '../catalog/image-records';
import { runPool } from '../shared/concurrency';
import type { Liveness, Log } from '../engine/liveness';
import { VmhubError } from '../shared/errors';
import { letFinish } from '../engine/signals';
import { blockDigestOf, blockListDigest, parseBlockId } from '../storage/block-ids';
import { isBlockStoreError, unlessNotFound, type Block, type BlockStore, type BlockStores } from '../storage/block-store';
import { hashPool } from '../storage/hashing';
import { copyStoredEnvelope } from '../provenance/stored';
import { findLocation } from '../topology/topology';
import { checkContent, expectedSha256, type ContentCheck } from './replica-content';

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

/** What the activity is given to run by: a checkpoint to resume from, its cancellation, heartbeat and log. */
interface RunOptions {
  resumed?: ReplicateCheckpoint;
  signal: AbortSignal;
  liveness: Liveness<ReplicateCheckpoint>;
  log: Log;
}

/**
 * Copies a committed image from the primary to a replica location with a streamed ranged copy: each
 * committed block is read from the primary, its bytes checked against the digest in its block ID, and
 * staged on the replica under the same ID; then the replica commits the same block list. Block IDs and
 * metadata are labels any writer of the replica can set, so the replica is `verified` only once its
 * committed bytes, read back, hash to the version's SHA-256 (./replica-content). Every block is staged
 * afresh, whatever the replica has staged under its ID; a retry resumes from `resumed`, and when what it
 * resumed hashes wrong, or its commit finds the blocks staged before gone, copies every block again
 * once. A blob already there counts only by its bytes.
 */
export async function replicateImage(deps: ReplicateDeps, input: ReplicateInput, options: RunOptions): Promise<ReplicaRecord> {
  const { storage, catalog } = deps;
  const { signal, log } = options;
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
  const meta = { image: input.image, version: input.version, location: target.id };
  await copy.replica.createContainer({ abortSignal: signal });
  // The signed provenance travels with the image: agents reading this replica read it here.
  await copyStoredEnvelope(copy.source, copy.replica, copy.blob, signal);

  const existing = await unlessNotFound(copy.replica.getProperties(copy.blob, { abortSignal: signal }));
  if (existing?.metadata.sha256 === expectedSha256(record) && existing.contentLength === record.sizeBytes) {
    const found = await hashReplica(copy, { next: 0, copied: 0 }, options);
    if (found.verified) return recordVerified(catalog, copy, target.id, found);
    log.warn("replica carries the version's metadata but other bytes; copying it again", { ...meta, reason: found.reason });
  }
  await catalog.versions.setReplica(input.image, input.version, { location: target.id, status: 'pending' });

  for (let resumed = options.resumed; ; resumed = undefined) {
    const progress = await copyAndCommit(copy, deps.concurrency, { ...options, resumed }, target.id).catch((err: unknown) => {
      // The blocks an earlier attempt staged are gone (a check deleted the blob, and with it what was
      // staged): committing the same list again can never succeed, copying every block again can.
      if ((resumed?.next ?? 0) > 0 && isBlockStoreError(err, 'invalid-block-list')) return undefined;
      throw err;
    });
    if (!progress) {
      log.warn('blocks an earlier attempt staged are gone; copying every block again', meta);
      continue;
    }
    const found = await hashReplica(copy, progress, options);
    if (found.verified) {
      log.info('replicated', { ...meta, blocksCopied: progress.copied });
      return recordVerified(catalog, copy, target.id, found);
    }
    if ((resumed?.next ?? 0) === 0) {
      // Every block was just staged from checked bytes, and still the replica reads otherwise: something else writes it.
      const reason = `${found.reason}, after a copy of every block`;
      await catalog.versions.setReplica(input.image, input.version, { location: target.id, status: 'failed', reason });
      await copy.replica.deleteIfExists(copy.blob, { abortSignal: signal });
      throw new VmhubError('StorageMismatch', `replica ${target.id} ${reason}`);
    }
    log.warn('blocks an earlier attempt staged hash wrong; copying every block again', { ...meta, reason: found.reason });
  }
}

/** Records the replica verified by the hash of its bytes; returns what it recorded. */
async function recordVerified(
  catalog: ReplicateDeps['catalog'],
  { record }: BlobCopy,
  location: string,
  found: Extract<ContentCheck, { verified: true }>,
): Promise<ReplicaRecord> {
  const verified: ReplicaRecord = {
    location,
    status: 'verified',
    etag: found.etag,
    sha256: record.sha256,
    verifiedAt: found.hashedAt,
    hashedAt: found.hashedAt,
  };
  await catalog.versions.setReplica(record.image, record.version, verified);
  return verified;
}

/** Reads the replica's committed bytes back and hashes them, beating the copy's progress meanwhile. */
function hashReplica(copy: BlobCopy, progress: ReplicateCheckpoint, { signal, liveness }: RunOptions): Promise<ContentCheck> {
  return liveness.keepBeating(
    () => checkContent(copy.replica, copy.record, { signal }),
    () => liveness.beat(progress),
  );
}

/** Stages every block from the checkpoint on, then commits the primary's block list on the replica; returns the progress. */
async function copyAndCommit(
  copy: BlobCopy,
  concurrency: number,
  options: RunOptions,
  location: string,
): Promise<ReplicateCheckpoint> {
  const { record, blob, signal } = copy;
  const blocks = await listBlocks(copy);
  const progress: ReplicateCheckpoint = options.resumed ?? { next: 0, copied: 0 };
  progress.phase = 'replicating';
  progress.location = location;
  progress.bytesTotal = record.sizeBytes;
  // Blocks done out of order count as they end; a retry starts again from `next`.
  progress.bytesDone = blocks.offsets[progress.next] ?? record.sizeBytes;
  await options.liveness.keepBeating(
    () => copyBlocks(copy, blocks, progress, concurrency, options.liveness),
    () => options.liveness.beat(progress),
  );

  const ids = blocks.committed.map((b) => b.name);
  await copy.replica.commitBlocks(blob, ids, {
    abortSignal: signal,
    metadata: { sha256: record.sha256, image: record.image, version: record.version },
    contentType: (await copy.source.getProperties(blob, { abortSignal: signal })).contentType,
  });
  const after = await copy.replica.committedBlocks(blob, { abortSignal: signal });
  const props = await copy.replica.getProperties(blob, { abortSignal: signal });
  if (blockListDigest(after.map((b) => b.name)) !== blockListDigest(ids) || props.contentLength !== record.sizeBytes) {
    throw new VmhubError('StorageMismatch', `replica ${location} does not hold the committed block list after commit`);
  }
  return progress;
}

/** What the copy works from: the primary's committed blocks with their offsets. */
interface CopyBlocks {
  committed: Block[];
  offsets: number[];
}

async function listBlocks({ record, blob, source, signal }: BlobCopy): Promise<CopyBlocks> {
  const committed = await source.committedBlocks(blob, { abortSignal: signal });
  const offsets: number[] = [];
  let offset = 0;
  for (const b of committed) {
    offsets.push(offset);
    offset += b.size;
  }
  if (offset !== record.sizeBytes) {
    throw new VmhubError('StorageMismatch', `primary blob is ${offset} bytes, the catalog says ${record.sizeBytes}`);
  }
  return { committed, offsets };
}

/**
 * Stages on the replica every committed block from `progress.next` on. A block the replica has staged
 * under the same ID is staged again, which replaces it: an ID says nothing of the bytes behind it.
 */
async function copyBlocks(
  copy: BlobCopy,
  { committed, offsets }: CopyBlocks,
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
    done.add(i);
    while (done.has(progress.next)) done.delete(progress.next++);
    progress.bytesDone = (progress.bytesDone ?? 0) + size;
    liveness.beat(progress);
  });
}
