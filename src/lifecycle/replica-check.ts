import type { Catalog } from '../catalog/catalog';
import type { Log } from '../engine/liveness';
import { VmhubError } from '../shared/errors';
import { unlessNotFound, type BlockStore, type BlockStores } from '../storage/block-store';
import type { ImageVersionRecord } from '../catalog/image-records';
import { checkContent, type ContentCheck } from '../publish/replica-content';

/** What a copy of a blob is, as storage reports it: its committed block IDs, size, recorded SHA-256 and etag. */
export interface BlobState {
  blockIds: string[];
  sizeBytes: number;
  sha256: string | undefined;
  etag?: string;
}

/**
 * Why a replica's labels differ from the primary's, or undefined when they agree: committed block IDs,
 * size and the SHA-256 metadata an agent checks a source by before it reads it. Agreeing labels are
 * no proof of equal bytes (any writer of the replica chooses them), only a cheap first look.
 */
export function replicaDifference(primary: BlobState, replica: BlobState | undefined): string | undefined {
  if (!replica) return 'blob is missing';
  if (replica.sizeBytes !== primary.sizeBytes) return `size is ${replica.sizeBytes} bytes, the primary's ${primary.sizeBytes}`;
  if (replica.blockIds.length !== primary.blockIds.length) {
    return `${replica.blockIds.length} committed blocks, the primary has ${primary.blockIds.length}`;
  }
  const first = primary.blockIds.findIndex((id, i) => replica.blockIds[i] !== id);
  if (first >= 0) return `committed block ${first} differs from the primary's`;
  if (replica.sha256 !== primary.sha256)
    return `SHA-256 metadata is ${replica.sha256 ?? 'unset'}, the primary's ${primary.sha256 ?? 'unset'}`;
  return undefined;
}

export interface ReplicaCheck {
  location: string;
  /**
   * `gone`: the version stopped being available (retired, say) since the page was listed. `pending`: a
   * replication of it is running, and the check left it alone.
   */
  status: 'verified' | 'stale' | 'gone' | 'pending';
  reason?: string;
}

/** The blob's committed block IDs, size and SHA-256 metadata; undefined when there is no blob. */
async function blobState(store: BlockStore, blob: string, signal: AbortSignal): Promise<BlobState | undefined> {
  const props = await unlessNotFound(store.getProperties(blob, { abortSignal: signal }));
  if (!props) return undefined;
  const list = await store.committedBlocks(blob, { abortSignal: signal });
  return {
    blockIds: list.map((b) => b.name),
    sizeBytes: props.contentLength,
    sha256: props.metadata.sha256,
    etag: props.etag,
  };
}

/**
 * Without reading the bytes again: right only when the catalog says they were hashed right at the etag
 * the blob still has (every write to a blob changes its etag).
 */
function hashedAtEtag(record: ImageVersionRecord, location: string, etag: string | undefined): ContentCheck {
  const known = record.replicas.find((r) => r.location === location);
  if (known?.status === 'verified' && known.hashedAt && etag !== undefined && known.etag === etag) {
    return { verified: true, etag, hashedAt: known.hashedAt };
  }
  return { verified: false, reason: 'its bytes were not hashed since it was last written' };
}

/**
 * Compares one replica with the primary: labels first (committed block list, size, SHA-256 metadata),
 * then its bytes. With `hash`, it reads the replica whole and hashes it against the version's SHA-256
 * (VerifyReplicas); without, it is right only if its bytes were hashed right at the etag it still has
 * (the check after a cancelled copy). Right: marked `verified`. Otherwise it is marked `stale` and its
 * blob deleted, so replicateImage writes it afresh. `note` says why the check ran (a cancelled copy),
 * after the difference in the reason the catalog keeps. With `skipPending`, a replica the catalog says
 * is being replicated is left alone: deleting its blob would discard the blocks that copy staged.
 */
export async function checkReplica(
  deps: { storage: BlockStores; catalog: Pick<Catalog, 'versions'> },
  input: { image: string; version: string; location: string; note?: string },
  signal: AbortSignal,
  log: Log,
  { hash = false, skipPending = false }: { hash?: boolean; skipPending?: boolean } = {},
): Promise<ReplicaCheck> {
  const { storage, catalog } = deps;
  const record = await catalog.versions.get(input.image, input.version);
  if (record?.status !== 'available') return { location: input.location, status: 'gone' };
  const known = record.replicas.find((r) => r.location === input.location);
  if (skipPending && known?.status === 'pending') {
    return { location: input.location, status: 'pending', reason: 'a replication of it is running; not checked' };
  }
  const blobName = record.location.blob;
  const primary = await blobState(storage.store(record.location.storage), blobName, signal);
  if (!primary) {
    throw new VmhubError('StorageMismatch', `the primary blob of ${input.image}@${input.version} is missing`);
  }
  const replicaStore = storage.store(input.location);
  const replica = await blobState(replicaStore, blobName, signal);
  let difference = replicaDifference({ ...primary, sha256: record.sha256 }, replica);
  // A replica verified before replicas were hashed, or proven by its blocks (../publish/replica-blocks), has no
  // hashedAt: a check that does not hash leaves it as it was, rather than delete a good copy; hashing runs
  // read never-hashed replicas first.
  if (difference === undefined && !hash && known?.status === 'verified' && !known.hashedAt && known.etag === replica?.etag) {
    return { location: input.location, status: 'verified' };
  }
  if (difference === undefined) {
    const proof = hash
      ? await checkContent(replicaStore, record, { signal })
      : hashedAtEtag(record, input.location, replica?.etag);
    if (proof.verified) {
      const kept = await catalog.versions.setReplica(input.image, input.version, {
        location: input.location,
        status: 'verified',
        etag: proof.etag,
        sha256: record.sha256,
        verifiedAt: new Date(),
        hashedAt: proof.hashedAt,
        // What the replication that wrote these bytes sent across stays theirs (`vmhub show` prints it).
        ...(known?.crossed ? { crossed: known.crossed } : {}),
      });
      return { location: input.location, status: kept ? 'verified' : 'gone' };
    }
    difference = proof.reason;
  }
  const reason = input.note ? `${difference} (${input.note})` : difference;
  log.warn('replica differs from the primary', {
    image: input.image,
    version: input.version,
    location: input.location,
    reason,
  });
  // Retired since it was read: the retire removes the blob, and nothing is to be replicated again.
  if (!(await catalog.versions.setReplica(input.image, input.version, { location: input.location, status: 'stale', reason }))) {
    return { location: input.location, status: 'gone' };
  }
  await replicaStore.deleteIfExists(blobName, { abortSignal: signal });
  return { location: input.location, status: 'stale', reason };
}
