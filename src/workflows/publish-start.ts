import type { RunRef } from '../catalog/image-records';
import type { BlockPlan } from '../shared/block-plan';
import type { BlobLocation } from '../shared/publish-input';
import { patched } from '@temporalio/workflow';
import { controlWith } from './activity-options';

/** A server-side copy within one account: quick, but beating, as a copy of a large blob may take a while. */
const seeding = controlWith({ startToCloseTimeout: '10 minutes', heartbeatTimeout: '30 seconds' });

/**
 * Starts the new version's blob as a copy of the highest earlier version's, when there is one, so staging
 * sends only the blocks that differ. The version it started from, if any; runs that began before this
 * step send every block.
 */
export async function startFromEarlier(
  target: { image: string; version: string; location: BlobLocation; plan: BlockPlan; owner: RunRef | undefined },
  show: (line: string) => void,
): Promise<string | undefined> {
  if (!patched('publish-starts-from-earlier')) return undefined;
  const ref = `${target.image}@${target.version}`;
  show(`looking for an earlier version of ${target.image} to start ${ref} from`);
  const seeded = await seeding.seedFromEarlier.executeWithOptions({ summary: `start ${ref} from an earlier version` }, [target]);
  return seeded.from;
}
