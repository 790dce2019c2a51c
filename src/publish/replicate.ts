import type { Catalog } from '../catalog/catalog';
import type { ImageVersionRecord, ReplicaRecord } from '../catalog/image-records';
import { runPool } from '../shared/concurrency';
import type { Liveness, Log } from '../engine/liveness';
import { isVmhubError, VmhubError } from '../shared/errors';
import { letFinish } from '../engine/signals';
import { blockDigestOf, blockListDigest, parseBlockId } from '../storage/block-ids';
import { isBlockStoreError, unlessNotFound, type Block, type BlockStore, type BlockStores } from '../storage/block-store';
import { hashPool } from '../storage/hashing';
import { copyStoredEnvelope } from '../provenance/stored';
import { blockSources, replicaBase, seedReplica, type BlockSource, type Seed, type SeedCopy } from './replica-seed';
import { findLocation } from '../topology/topology';
import { checkContent, expectedSha256, type ContentCheck } from './replica-content';
import { metrics } from '../observability/metrics';
import type { TrustedKey } from '../provenance/keys';
import { checkStagedBlocks, provableByBlocks, type StagedCheck } from './replica-blocks';

export interface ReplicateInput {
  image: string;
  version: string;
  /** The replica storage location to copy to. */
  location: string;
}

/**
 * Progress of a replication: every block before `next` is on the replica (a retry resumes there),
 * `copied` of them by this run; `bytesDone` of `bytesTotal` are there, for progress readers. `from`: the
 * earlier version the replica blob was seeded from, while the copy builds on it; `crossedBytes`: bytes this
 * attempt read from the primary so far. Each attempt counts only its own reads: blocks past `next` an earlier
 * attempt copied are read again, and counting both would report more than one copy's egress.
 */
export interface ReplicateCheckpoint {
  next: number;
  copied: number;
  phase?: 'replicating';
  location?: string;
  bytesDone?: number;
  bytesTotal?: number;
  from?: string;
  /** The seed's copy, while the replica is proven by its blocks (./replica-blocks). */
  seeded?: SeedCopy;
  crossedBytes?: number;
}

export interface ReplicateDeps {
  storage: BlockStores;
  catalog: Pick<Catalog, 'versions'>;
  /** Blocks copied at once. */
  concurrency: number;
  /** Keys whose signed block lists let a seeded replica be proven by its blocks; none: by all its bytes. */
  trusted: readonly TrustedKey[];
}

type Available = ImageVersionRecord & { sha256: string };

/** One copy of a blob from the primary to a replica, block by block. */
interface BlobCopy {
  record: Available;
  blob: string;
  source: BlockStore;
  replica: BlockStore;
  /** The replica location's ID. */
  location: string;
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
 * Copies a committed image from the primary to a replica location. When the replica location holds an
 * earlier version verified there (./replica-seed), and nothing is committed at the replica blob yet, the
 * blob starts as a copy of that version within the replica's own account, and only the blocks it lacks are
 * read from the primary (blocks it holds elsewhere are read from it, or from the primary when those bytes
 * fail their digest there); otherwise every block is. Each block
 * read is checked against the digest in its block ID and staged on the replica under the same ID; then the
 * replica commits the primary's block list. Block IDs and metadata are labels any writer of the replica can
 * set, so the replica is `verified` only once its committed bytes, read back whole, hash to the version's
 * SHA-256 (./replica-content): what a seed brought counts by those bytes too. That read is not overlapped
 * with the copy on purpose: commits of a growing prefix, each read back, would not bind the final blob, as
 * each commit resolves the prefix's IDs again and takes a block anyone staged under one meanwhile. A seed
 * copied this run from a replica hashed whole at that etag, where both versions signed their block lists, is
 * the exception: the commit keeps the seed's committed blocks by ID, and only the blocks staged are read back
 * (./replica-blocks). A retry resumes from
 * `resumed` (from block 0 when it seeds afresh: the copy may discard what was staged); when its commit finds
 * blocks it counted on gone, it copies again what the committed seed lacks, and when what it resumed or
 * seeded hashes wrong, every block once. A blob already there counts only by its bytes. A typed failure is
 * final: the replica is marked `failed` and its blob removed.
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
    location: target.id,
    signal,
  };
  const meta = { image: input.image, version: input.version, location: target.id };
  await copy.replica.createContainer({ abortSignal: signal });
  // The signed provenance travels with the image: agents reading this replica read it here.
  await copyStoredEnvelope(copy.source, copy.replica, copy.blob, signal);

  const existing = await unlessNotFound(copy.replica.getProperties(copy.blob, { abortSignal: signal }));
  if (existing?.metadata.sha256 === expectedSha256(record) && existing.contentLength === record.sizeBytes) {
    const found = await hashReplica(copy, { next: 0, copied: 0 }, options);
    if (found.verified) return recordVerified(catalog, copy, target.id, found, { bytes: 0 });
    log.warn("replica carries the version's metadata but other bytes; copying it again", { ...meta, reason: found.reason });
  }
  await catalog.versions.setReplica(input.image, input.version, { location: target.id, status: 'pending' });
  try {
    return await copyUntilVerified(deps, copy, existing !== undefined, options);
  } catch (err) {
    // Typed failures are final: a retry would meet the same bytes. The replica must not stay pending over
    // a half-built blob (a seed of the earlier version under the new name, say).
    if (isVmhubError(err) && !signal.aborted) await markFailed(deps.catalog, copy, err.message);
    throw err;
  }
}

/**
 * Copies and commits until the replica's bytes hash right: on blocks gone that it counted on, or on bytes
 * that hash wrong, once more from what the replica still holds, then (still wrong) from nothing at all.
 */
async function copyUntilVerified(
  deps: ReplicateDeps,
  copy: BlobCopy,
  committedBefore: boolean,
  options: RunOptions,
): Promise<ReplicaRecord> {
  const { log } = options;
  const meta = { image: copy.record.image, version: copy.record.version, location: copy.location };
  let seed = await startingPoint(deps, copy, committedBefore, options);
  // A fresh seed was copied over whatever an earlier attempt staged (Copy Blob may discard it): start at 0.
  const resumed = seed && !committedBefore ? undefined : options.resumed;
  let progress: ReplicateCheckpoint = { next: 0, copied: 0, ...resumed, crossedBytes: 0 };
  // A copy of every block again keeps the count of what crossed before it.
  const again = () => ({ next: 0, copied: 0, crossedBytes: progress.crossedBytes });
  let rebuilt = false;
  const blocks = await listBlocks(copy);
  for (;;) {
    const resumedAt = progress.next;
    const sources = blockSources(blocks.committed, seed?.committed);
    const keepSeed = seed && (await seedProvable(deps, copy, blocks.committed, seed, options));
    progress.seeded = keepSeed === undefined ? undefined : seed?.copied;
    const run = { ...options, concurrency: deps.concurrency, keepSeed };
    const etag = await copyAndCommit(copy, { ...blocks, sources }, seed, progress, run).catch((err: unknown) => {
      // Blocks counted on are gone (staged blocks discarded, or a check deleted the blob and with it what
      // was staged and seeded), or the seed the commit keeps changed since it was copied (or a commit that
      // succeeded was retried after its answer was lost): committing the same list again can never
      // succeed, copying again can.
      if ((resumedAt > 0 || seed) && isBlockStoreError(err, 'invalid-block-list', 'precondition-failed')) return undefined;
      throw err;
    });
    if (etag === undefined) {
      // What the replica still has committed (an intact seed) need not cross data centers again.
      seed = rebuilt || !seed ? undefined : await committedSeed(copy, seed.from);
      rebuilt = true;
      log.warn('blocks an earlier attempt staged or seeded are gone; copying again what the replica lacks', {
        ...meta,
        from: seed?.from,
      });
      progress = again();
      continue;
    }
    const found = keepSeed
      ? await checkStaged(copy, { ...blocks, sources }, etag, run, progress)
      : await hashReplica(copy, progress, options);
    if (found.verified) {
      log.info('replicated', { ...meta, blocksCopied: progress.copied, crossedBytes: progress.crossedBytes, from: seed?.from });
      const crossed = { bytes: progress.crossedBytes ?? 0, ...(seed ? { from: seed.from } : {}) };
      return recordVerified(deps.catalog, copy, copy.location, found, crossed);
    }
    if (resumedAt === 0 && !seed) {
      // Every block was just staged from checked bytes, and still the replica reads otherwise: something else writes it.
      throw new VmhubError('StorageMismatch', `replica ${copy.location} ${found.reason}, after a copy of every block`);
    }
    log.warn('blocks staged, or seeded, read back wrong; copying every block again', {
      ...meta,
      reason: found.reason,
    });
    [seed, progress] = [undefined, again()];
  }
}

/** Marks the replica failed with `reason` and removes its blob, so nothing half-built stays under the version's name. */
async function markFailed(catalog: ReplicateDeps['catalog'], copy: BlobCopy, reason: string): Promise<void> {
  const { record, replica, blob, location, signal } = copy;
  await catalog.versions.setReplica(record.image, record.version, { location, status: 'failed', reason });
  await replica.deleteIfExists(blob, { abortSignal: signal });
}

/**
 * The seed the replica blob still holds: its committed blocks, if any; with `copied` when the blob still
 * has the etag that copy made.
 */
async function committedSeed(copy: BlobCopy, from: string, copied?: SeedCopy): Promise<Seed | undefined> {
  const { replica, blob, signal } = copy;
  const current = copied && (await unlessNotFound(replica.getProperties(blob, { abortSignal: signal })));
  const committed = await unlessNotFound(replica.committedBlocks(blob, { abortSignal: signal }));
  if (!committed?.length) return undefined;
  return { from, committed, ...(copied && current?.etag === copied.etag ? { copied } : {}) };
}

/**
 * What the replica blob starts from. Nothing committed there: a copy of the base version, if there is one
 * (a full copy when it cannot be made). Something committed: the seed an earlier attempt made, by the
 * checkpoint, taken at its committed blocks; else nothing, and every block is copied.
 */
async function startingPoint(
  deps: ReplicateDeps,
  copy: BlobCopy,
  committed: boolean,
  { resumed, signal, log }: RunOptions,
): Promise<Seed | undefined> {
  if (committed) return resumed?.from === undefined ? undefined : committedSeed(copy, resumed.from, resumed.seeded);
  const versions = await deps.catalog.versions.list(copy.record.image, { status: 'available' });
  const base = replicaBase(copy.record, versions, copy.location);
  if (!base) return undefined;
  const verifiedEtag = base.replicas.find((r) => r.location === copy.location)?.etag;
  return seedReplica(copy.replica, copy.blob, { version: base.version, blob: base.location.blob, verifiedEtag }, { signal, log });
}

/**
 * Records the replica verified, with what crossed for it; returns what it recorded. `hashedAt` only when its
 * bytes were read and hashed whole: one proven by its blocks is hashed whole by the next VerifyReplicas.
 */
async function recordVerified(
  catalog: ReplicateDeps['catalog'],
  { record }: BlobCopy,
  location: string,
  found: { etag: string; hashedAt?: Date },
  crossed: NonNullable<ReplicaRecord['crossed']>,
): Promise<ReplicaRecord> {
  const verified: ReplicaRecord = {
    location,
    status: 'verified',
    etag: found.etag,
    sha256: record.sha256,
    verifiedAt: found.hashedAt ?? new Date(),
    ...(found.hashedAt ? { hashedAt: found.hashedAt } : {}),
    crossed,
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

/**
 * The seed's etag, when the replica can be proven by its blocks (./replica-blocks): the seed is still the
 * copy this replication made of a verified replica, and both versions signed their block lists.
 */
async function seedProvable(
  deps: ReplicateDeps,
  copy: BlobCopy,
  blocks: Block[],
  seed: Seed,
  { signal, log }: RunOptions,
): Promise<string | undefined> {
  const { copied } = seed;
  if (!copied || deps.trusted.length === 0) return undefined;
  const base = await deps.catalog.versions.get(copy.record.image, seed.from);
  // Only a base whose replica was hashed whole at the etag the seed was copied at: a chain of replicas proven
  // by blocks would rest on a label (no hashedAt also marks replicas verified before replicas were hashed).
  const hashed = base?.replicas.some(
    (r) => r.location === copy.location && r.status === 'verified' && r.hashedAt && r.etag === copied.baseEtag,
  );
  if (!base || !hashed) return undefined;
  const basis = { record: copy.record, blocks, base, seeded: seed.committed, primary: copy.source, trusted: deps.trusted };
  return (await provableByBlocks({ ...basis, signal, log })) ? copied.etag : undefined;
}

/** Reads back the blocks the commit took from what was staged, beating the copy's progress meanwhile. */
function checkStaged(
  copy: BlobCopy,
  blocks: CopyBlocks & { sources: BlockSource[] },
  etag: string,
  { signal, liveness, concurrency }: RunOptions & { concurrency: number },
  progress: ReplicateCheckpoint,
): Promise<StagedCheck> {
  const staged = blocks.sources.flatMap((s, i) => (s.from === 'kept' ? [] : [i]));
  return liveness.keepBeating(
    () => checkStagedBlocks(copy.replica, copy.blob, blocks, staged, { etag, concurrency, signal }),
    () => liveness.beat(progress),
  );
}

/**
 * Stages every block the seed lacks from the checkpoint on, then commits the primary's block list on the
 * replica, noting what it did in `progress`; returns the commit's etag. With `keepSeed`, the commit is of
 * the seed at that etag and takes its blocks by their committed IDs, the others from what was staged;
 * otherwise each ID is what was staged under it, else the seed's.
 */
async function copyAndCommit(
  copy: BlobCopy,
  blocks: CopyBlocks & { sources: BlockSource[] },
  seed: Seed | undefined,
  progress: ReplicateCheckpoint,
  options: RunOptions & { concurrency: number; keepSeed?: string },
): Promise<string> {
  const { record, blob, signal } = copy;
  const { sources } = blocks;
  const location = copy.location;
  Object.assign(progress, { phase: 'replicating', location, bytesTotal: record.sizeBytes, from: seed?.from });
  progress.crossedBytes ??= 0;
  // Blocks done out of order count as they end; a retry starts again from `next`.
  progress.bytesDone = blocks.committed.reduce(
    (n, b, i) => n + (i < progress.next || sources[i].from === 'kept' ? b.size : 0),
    0,
  );
  await options.liveness.keepBeating(
    () => copyBlocks(copy, blocks, progress, options.concurrency, options),
    () => options.liveness.beat(progress),
  );

  const ids = blocks.committed.map((b) => b.name);
  const { keepSeed } = options;
  const kept = blocks.committed.filter((_, i) => sources[i].from === 'kept').map((b) => b.name);
  const { etag } = await copy.replica.commitBlocks(blob, ids, {
    abortSignal: signal,
    metadata: { sha256: record.sha256, image: record.image, version: record.version },
    contentType: (await copy.source.getProperties(blob, { abortSignal: signal })).contentType,
    ...(keepSeed === undefined ? {} : { keepCommitted: new Set(kept), conditions: { ifMatch: keepSeed } }),
  });
  const after = await copy.replica.committedBlocks(blob, { abortSignal: signal });
  const props = await copy.replica.getProperties(blob, { abortSignal: signal });
  // By ID: what sizes the bytes behind them have, the read-back decides.
  if (blockListDigest(after.map((b) => b.name)) !== blockListDigest(ids) || props.contentLength !== record.sizeBytes) {
    throw new VmhubError('StorageMismatch', `replica ${location} does not hold the committed block list after commit`);
  }
  return etag;
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
 * Stages on the replica every committed block from `progress.next` on that the seed does not hold under its
 * ID: read from the primary (counted as crossed), or from the seeded blob where it holds the same bytes
 * elsewhere. A block the replica has staged under the same ID is staged again, which replaces it: an ID
 * says nothing of the bytes behind it.
 */
async function copyBlocks(
  copy: BlobCopy,
  blocks: CopyBlocks & { sources: BlockSource[] },
  progress: ReplicateCheckpoint,
  concurrency: number,
  { liveness, log }: Pick<RunOptions, 'liveness' | 'log'>,
): Promise<void> {
  const { committed, sources } = blocks;
  const { blob, replica, signal } = copy;
  const done = new Set<number>();
  const indices: number[] = [];
  committed.forEach((_, i) => {
    if (i >= progress.next) sources[i].from === 'kept' ? done.add(i) : indices.push(i);
  });
  const advance = () => {
    while (done.has(progress.next)) done.delete(progress.next++);
  };
  advance();
  // Block buffers go round: read into, moved to a hashing thread and back, staged, then read into
  // again, so no block is zero-filled, copied to be hashed or left to the collector.
  const spare: Buffer[] = [];
  // Reads run ahead of stages: `concurrency` of each in flight, so neither side waits for the other
  // (at most twice `concurrency` blocks held, as a streamed copy holds its upload buffers).
  const [reading, staging] = [gate(concurrency), gate(concurrency)];
  await runPool(indices, 2 * concurrency, async (i) => {
    const block = committed[i];
    const size = block.size;
    const into = spare.find((b) => b.length === size);
    if (into) spare.splice(spare.indexOf(into), 1);
    const { bytes, crossed } = await readChecked(copy, blocks, i, into ?? Buffer.allocUnsafe(size), { reading, log });
    await staging(() => letFinish(signal, (abortSignal) => replica.stageBlock(blob, block.name, bytes, { abortSignal })));
    spare.push(bytes);
    progress.copied++;
    const labels = { image: copy.record.image, location: copy.location };
    metrics.replicatedBytes.inc(labels, size);
    if (crossed) {
      progress.crossedBytes = (progress.crossedBytes ?? 0) + size;
      metrics.crossedBytes.inc(labels, size);
    }
    done.add(i);
    advance();
    progress.bytesDone = (progress.bytesDone ?? 0) + size;
    liveness.beat(progress);
  });
}

/**
 * Block `i`, read into `into` and checked against the digest in its ID; `crossed` when it was read from the
 * primary. A block the seeded replica blob holds elsewhere is read there first; when that read fails or its
 * bytes match no digest (the seed changed under it), the primary's copy is read instead, which decides.
 */
async function readChecked(
  copy: BlobCopy,
  { committed, offsets, sources }: CopyBlocks & { sources: BlockSource[] },
  i: number,
  into: Buffer,
  { reading, log }: { reading: ReturnType<typeof gate>; log: Log },
): Promise<{ bytes: Buffer; crossed: boolean }> {
  const { record, blob, source, replica, signal } = copy;
  const expected = parseBlockId(committed[i].name)?.digest;
  const checked = async (read: Buffer) => {
    const { hex, bytes } = await hashPool().sha256Moving(read);
    return { bytes, right: expected === undefined || blockDigestOf(hex) === expected };
  };
  const from = sources[i];
  if (from.from === 'replica') {
    const local = await reading(() => replica.readInto(blob, into, from.offset, { abortSignal: signal })).then(
      checked,
      (err: unknown) => {
        if (signal.aborted) throw err;
        return { bytes: into, right: false, reason: err instanceof Error ? err.message : String(err) };
      },
    );
    if (local.right) return { bytes: local.bytes, crossed: false };
    if (!('reason' in local)) metrics.verificationFailures.inc({ kind: 'block' });
    const reason = 'reason' in local ? local.reason : 'its bytes do not match the digest in its ID';
    log.warn('a block could not be taken from the seeded replica blob; reading it from the primary', { blob, block: i, reason });
    into = local.bytes;
  }
  const read = await checked(await reading(() => source.readInto(blob, into, offsets[i], { abortSignal: signal })));
  if (!read.right) {
    metrics.verificationFailures.inc({ kind: 'block' });
    throw new VmhubError('StorageMismatch', `block ${i} read from ${record.location.storage} does not match its digest`);
  }
  return { bytes: read.bytes, crossed: true };
}

/** At most `limit` calls of what it is given run at once; the others wait their turn, first come first served. */
function gate(limit: number): <T>(fn: () => Promise<T>) => Promise<T> {
  let running = 0;
  const waiting: Array<() => void> = [];
  return async (fn) => {
    if (running >= limit) await new Promise<void>((resolve) => waiting.push(resolve));
    else running++;
    try {
      return await fn();
    } finally {
      const next = waiting.shift();
      if (next) next();
      else running--;
    }
  };
}
