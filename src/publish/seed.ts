import type { Catalog } from '../catalog/catalog';
import type { ImageVersionRecord } from '../catalog/image-records';
import type { Log } from '../engine/liveness';
import type { BlockPlan } from '../shared/block-plan';
import type { BlobLocation } from '../shared/publish-input';
import { highestEarlier } from './earlier-version';
import { isBlockStoreError, unlessNotFound, type BlockStore } from '../storage/block-store';

export interface SeedInput {
  image: string;
  version: string;
  location: BlobLocation;
  plan: BlockPlan;
  /** The run seeding, recorded on the seeded blob. */
  runId: string;
}

/** The blob the new version's blocks start from: `from` the earlier version it copied, and how many blocks that gave. */
export interface SeedOutput {
  from?: string;
  blocks: number;
}

/** Metadata key of a seeded blob: the version it is a copy of, until the publish commits its own list. */
export const SEEDED_FROM = 'seeded';

/**
 * The earlier version a new one starts from: the highest available version below it, in the same storage
 * location (a copy stays within one account) and with the same block size (block IDs of other sizes never
 * match), whose commit's etag was recorded. Versions that are retiring, retired or failed are not candidates.
 */
export function seedBase(available: ImageVersionRecord[], input: Pick<SeedInput, 'version' | 'location' | 'plan'>) {
  return highestEarlier(
    available,
    input.version,
    (v) => v.etag !== undefined && v.blockSize === input.plan.blockSize && v.location.storage === input.location.storage,
  );
}

/**
 * Starts the new version's blob as a server-side copy of the earlier version's (Copy Blob within the
 * account keeps its committed block list), so staging sends only the blocks whose IDs (position and
 * digest) the copy does not have, and the commit names the copied ones beside them. The copy is bound to
 * the etag the base's own publish committed, so its blocks are bytes a publish sent after hashing its
 * source, not whatever a writer put under those IDs since; the commit still checks the whole list against
 * the pass that hashed this source. Seeding is only ever a saving: with no base, or a base gone or changed
 * meanwhile (retired during the copy), the publish sends every block. A blob already at the target counts
 * only when this run wrote it (an earlier attempt's copy); any other is removed first.
 */
export async function seedFromEarlier(
  deps: { store: BlockStore; catalog: Pick<Catalog, 'versions'> },
  input: SeedInput,
  log: Log,
  abortSignal?: AbortSignal,
): Promise<SeedOutput> {
  const { store } = deps;
  const { blob } = input.location;
  const ours = async (): Promise<SeedOutput | undefined> => {
    const there = await unlessNotFound(store.getProperties(blob, { abortSignal }));
    if (!there) return undefined;
    // This run's copy (an earlier attempt's), or its commit (a reset run replaying the publish).
    if (there.metadata.run === input.runId) {
      return { from: there.metadata[SEEDED_FROM], blocks: (await store.committedBlocks(blob, { abortSignal })).length };
    }
    // Left by another run (a crashed one whose claim this run took over): its blocks are labels nobody checked.
    log.warn('removing a blob another run left where the new version goes', { blob });
    await store.deleteIfExists(blob, { abortSignal });
    return undefined;
  };
  const there = await ours();
  if (there) return there;
  const base = seedBase(await deps.catalog.versions.list(input.image, { status: 'available' }), input);
  if (!base) return { blocks: 0 };
  try {
    await store.copyWithin(blob, base.location.blob, {
      abortSignal,
      sourceEtag: base.etag,
      metadata: { [SEEDED_FROM]: base.version, run: input.runId },
    });
  } catch (err) {
    if (!isBlockStoreError(err, 'not-found', 'precondition-failed', 'conflict')) throw err;
    // The base went or changed (retired), or an earlier attempt's copy landed first.
    log.warn('the new version does not start from an earlier one', { base: base.version, reason: String(err) });
    return (await ours()) ?? { blocks: 0 };
  }
  const blocks = (await store.committedBlocks(blob, { abortSignal })).length;
  log.info('the new version starts from an earlier one', { base: base.version, blocks });
  return { from: base.version, blocks };
}
