import semver from 'semver';
import type { VersionOverlap } from '../catalog/image-records';
import { withFailures } from '../shared/failures';
import type { BlobLocation } from '../shared/publish-input';
import { sharedBlockCount } from '../storage/block-overlap';
import type { PublishDeps } from './publish';

/** What a publish notes about a new version beside its record: where a delta deploy of it saves bytes. */
export function createOverlapActivities({ storage, catalog }: PublishDeps) {
  const committedIds = async (location: BlobLocation): Promise<string[]> => {
    return (await storage.store(location.storage).committedBlocks(location.blob)).map((b) => b.name);
  };

  return {
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
        const previous = available.find((v) => semver.lt(v.version, record.version));
        if (!previous || previous.blockSize !== record.blockSize) return null;
        const [ids, previousIds] = await Promise.all([committedIds(record.location), committedIds(previous.location)]);
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
