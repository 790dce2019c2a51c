import type { VersionOverlap } from '../catalog/image-records';
import { cancellationSignal, log } from '@temporalio/activity';
import type { RunRef } from '../catalog/image-records';
import { highestEarlier } from '../publish/earlier-version';
import { seedFromEarlier, type SeedOutput } from '../publish/seed';
import type { BlockPlan } from '../shared/block-plan';
import { withFailures } from '../shared/failures';
import type { BlobLocation } from '../shared/publish-input';
import { sharedBlockCount } from '../storage/block-overlap';
import { unlessNotFound } from '../storage/block-store';
import { keepBeating } from './keep-beating';
import type { PublishDeps } from './publish';
import { ownerOf } from './this-run';

/**
 * What a new version shares with the earlier versions of its image: the blob it starts as a copy of, so
 * only changed blocks are sent, and the overlap noted beside its record, where a delta deploy saves bytes.
 */
export function createOverlapActivities({ storage, catalog }: PublishDeps) {
  /** The blob's committed block IDs; undefined when it is gone (a version retired meanwhile), which no retry changes. */
  const committedIds = async (location: BlobLocation): Promise<string[] | undefined> => {
    return (await unlessNotFound(storage.store(location.storage).committedBlocks(location.blob)))?.map((b) => b.name);
  };

  return {
    /** Starts the new version's blob as a server-side copy of an earlier version's, when there is one. */
    async seedFromEarlier(input: {
      image: string;
      version: string;
      location: BlobLocation;
      plan: BlockPlan;
      owner?: RunRef;
    }): Promise<SeedOutput> {
      const store = storage.store(input.location.storage);
      return keepBeating(() =>
        withFailures(() =>
          seedFromEarlier({ store, catalog }, { ...input, runId: ownerOf(input).runId }, log, cancellationSignal()),
        ),
      );
    },

    /**
     * Notes in the catalog how many blocks an available version shares with the highest earlier available
     * version of its image. Versions of different block sizes share nothing a delta deploy could reuse:
     * nothing is noted then, nor for an image's first version.
     */
    async noteOverlap(input: { image: string; version: string }): Promise<VersionOverlap | null> {
      return withFailures(async () => {
        const record = await catalog.versions.get(input.image, input.version);
        if (record?.status !== 'available') return null;
        const available = await catalog.versions.list(input.image, { status: 'available' });
        const previous = highestEarlier(available, record.version);
        if (!previous || previous.blockSize !== record.blockSize) return null;
        const [ids, previousIds] = await Promise.all([committedIds(record.location), committedIds(previous.location)]);
        if (!ids || !previousIds) return null;
        const overlap = {
          previousVersion: previous.version,
          sharedBlocks: sharedBlockCount(ids, previousIds),
          blockCount: ids.length,
        };
        // Retired or retiring meanwhile: nothing is noted, and the result says so.
        return (await catalog.versions.setOverlap(record.image, record.version, overlap)) ? overlap : null;
      });
    },
  };
}
