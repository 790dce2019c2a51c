import type { Catalog } from '../catalog/catalog';
import type { Log } from '../engine/liveness';
import { VmhubError } from '../shared/errors';
import { unlessNotFound, type BlockStore, type BlockStores } from '../storage/block-store';

/** What a copy of a blob is, as storage reports it: its committed block IDs, size and recorded SHA-256. */
export interface BlobState {
  blockIds: string[];
  sizeBytes: number;
  sha256: string | undefined;
}

/**
 * Why a replica differs from the primary, or undefined when they agree. Block IDs carry each block's
 * digest, so equal committed block lists and sizes mean equal bytes; the SHA-256 metadata is what an
 * agent checks a source by before it reads it.
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
  /** `gone`: the version stopped being available (retired, say) since the page was listed. */
  status: 'verified' | 'stale' | 'gone';
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
  };
}

/**
 * Compares one replica with the primary: committed block list, size and SHA-256 metadata. A replica
 * that differs is marked `stale` and its blob deleted, so replicateImage writes it afresh rather than
 * trusting metadata the differing copy may carry. `note` says why the check ran (a cancelled copy), after
 * the difference in the reason the catalog keeps.
 */
export async function checkReplica(
  deps: { storage: BlockStores; catalog: Pick<Catalog, 'versions'> },
  input: { image: string; version: string; location: string; note?: string },
  signal: AbortSignal,
  log: Log,
): Promise<ReplicaCheck> {
  const { storage, catalog } = deps;
  const record = await catalog.versions.get(input.image, input.version);
  if (record?.status !== 'available') return { location: input.location, status: 'gone' };
  const blobName = record.location.blob;
  const primary = await blobState(storage.store(record.location.storage), blobName, signal);
  if (!primary) {
    throw new VmhubError('StorageMismatch', `the primary blob of ${input.image}@${input.version} is missing`);
  }
  const replicaStore = storage.store(input.location);
  const replica = await blobState(replicaStore, blobName, signal);
  const difference = replicaDifference({ ...primary, sha256: record.sha256 }, replica);
  if (difference === undefined) {
    const etag = (await replicaStore.getProperties(blobName, { abortSignal: signal })).etag;
    const kept = await catalog.versions.setReplica(input.image, input.version, {
      location: input.location,
      status: 'verified',
      etag,
      sha256: record.sha256,
      verifiedAt: new Date(),
    });
    return { location: input.location, status: kept ? 'verified' : 'gone' };
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
