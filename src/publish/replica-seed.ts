import type { ImageVersionRecord } from '../catalog/image-records';
import type { Log } from '../engine/liveness';
import { parseBlockId } from '../storage/block-ids';
import type { Block, BlockStore } from '../storage/block-store';
import { highestEarlier } from './earlier-version';

/**
 * The version a replica of `record` can start from at `location`: the highest earlier available version
 * of the image whose replica there is `verified`, at the same block size (blocks of another size share
 * no ID). Undefined when there is none: the replica is then copied whole.
 */
export function replicaBase(
  record: Pick<ImageVersionRecord, 'image' | 'version' | 'blockSize' | 'location'>,
  versions: readonly ImageVersionRecord[],
  location: string,
): ImageVersionRecord | undefined {
  return highestEarlier(
    versions,
    record.version,
    (v) =>
      v.image === record.image &&
      v.blockSize === record.blockSize &&
      v.location.blob !== record.location.blob &&
      v.replicas.some((r) => r.location === location && r.status === 'verified'),
  );
}

/** A replica blob that starts as an earlier version: what it was copied from, and its committed blocks. */
export interface Seed {
  from: string;
  committed: Block[];
  /**
   * While the blob is known to be the copy this replication made: its etag as the copy made it, and the
   * etag of the base's replica it was copied at (the one its record names verified).
   */
  copied?: SeedCopy;
}

export interface SeedCopy {
  etag: string;
  baseEtag: string;
}

/**
 * Copies the base version's replica blob to `blob` within the replica's own account (Copy Blob keeps the
 * committed block list). Undefined when the copy fails (the base retired or its blob gone meanwhile, or
 * anything else): the caller copies every block then, which is always possible.
 */
export async function seedReplica(
  replica: BlockStore,
  blob: string,
  base: { version: string; blob: string; verifiedEtag?: string },
  { signal, log }: { signal: AbortSignal; log: Log },
): Promise<Seed | undefined> {
  try {
    // Of the blob as it was verified, so a base changed since costs no copy (the read-back would refuse it).
    const { etag } = await replica.copyWithin(blob, base.blob, { abortSignal: signal, sourceEtag: base.verifiedEtag });
    const committed = await replica.committedBlocks(blob, { abortSignal: signal });
    // Only a copy of the replica as it was verified is known for what it holds.
    return {
      from: base.version,
      committed,
      ...(base.verifiedEtag === undefined ? {} : { copied: { etag, baseEtag: base.verifiedEtag } }),
    };
  } catch (err) {
    if (signal.aborted) throw err;
    log.warn('an earlier version could not be copied within the replica; copying every block', {
      blob,
      from: base.version,
      reason: err instanceof Error ? err.message : String(err),
    });
    return undefined;
  }
}

/**
 * Where each block of the new version comes from: `kept`, committed under its ID in the seeded blob;
 * `replica`, the same bytes (by the digest in its ID) elsewhere in the seeded blob, read there at
 * `offset`, so a block that moved does not cross data centers; otherwise `primary`.
 */
export type BlockSource = { from: 'kept' } | { from: 'replica'; offset: number } | { from: 'primary' };

export function blockSources(wanted: readonly Block[], seeded: readonly Block[] = []): BlockSource[] {
  const committed = new Set(seeded.map((b) => `${b.name}/${b.size}`));
  const byDigest = new Map<string, number>();
  let offset = 0;
  for (const b of seeded) {
    const digest = parseBlockId(b.name)?.digest;
    if (digest !== undefined && !byDigest.has(`${digest}/${b.size}`)) byDigest.set(`${digest}/${b.size}`, offset);
    offset += b.size;
  }
  return wanted.map((b): BlockSource => {
    if (committed.has(`${b.name}/${b.size}`)) return { from: 'kept' };
    const digest = parseBlockId(b.name)?.digest;
    const at = digest === undefined ? undefined : byDigest.get(`${digest}/${b.size}`);
    return at === undefined ? { from: 'primary' } : { from: 'replica', offset: at };
  });
}
