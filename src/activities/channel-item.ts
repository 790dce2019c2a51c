import path from 'node:path';
import { ApplicationFailure, cancellationDetails, heartbeat, log } from '@temporalio/activity';
import { imageDir } from '../datastore/layout';
import { acquireLock, releaseLock } from '../datastore/locks';
import { signedDigests } from '../deploy/expected-members';
import { syncChannelItem } from '../sddc/channel-item';
import { placementOf, type Progress } from '../sddc/library-import';
import { validateChannelName } from '../shared/names';
import type { LibraryPlacement } from '../shared/target-kinds/kind';
import { activityLockHolder } from './agent';
import { libraryContext, withVcenter, type ContentLibraryDeps, type LibraryTaskInput } from './content-library';
import { keepBeating } from './keep-beating';

export type ChannelItemInput = LibraryTaskInput & { channel: string };

export interface ChannelItemOutput {
  status: 'updated' | 'current';
  /** The channel's item, whose ID never changes. */
  placement: LibraryPlacement;
  /** Bytes copied from the version's item into the channel's; none when it already held the version. */
  bytesCopied: number;
}

/**
 * An SDDC agent's channel activities: `syncChannelItem` points the channel's library item
 * `<image>-<channel>` at a version a deploy has already imported into the same library (src/sddc/channel-item.ts).
 */
export function createChannelItemActivities(deps: ContentLibraryDeps) {
  const { sddc, trusted, root, vcenter } = libraryContext(deps);

  return {
    /**
     * Makes the channel's item hold exactly the version's signed files, copied from the version's item.
     * Holds `<datastore>/<image>/channel-<channel>.lock`, so two tasks never interleave on one channel item
     * (ChannelUpdateInProgress, retried). A cancel cancels the update session: nothing of it is applied.
     */
    async syncChannelItem(input: ChannelItemInput): Promise<ChannelItemOutput> {
      return withVcenter(
        vcenter,
        input,
        async (conn, ref, signal) => {
          const lock = path.join(await imageDir(root, ref.image), `channel-${input.channel}.lock`);
          const holder = activityLockHolder();
          const taken = await acquireLock(lock, holder);
          if (!taken.acquired) {
            throw ApplicationFailure.retryable(
              `channel ${input.channel} of ${ref.image} is being updated by pid ${taken.holder.pid} (activity ${taken.holder.activityId})`,
              'ChannelUpdateInProgress',
            );
          }
          let progress: Progress = { bytesDone: 0, bytesTotal: ref.sizeBytes };
          try {
            const synced = await keepBeating(
              () =>
                syncChannelItem(conn, ref, input.channel, {
                  members: signedDigests(ref, input.envelope, trusted)?.members,
                  signal,
                  onProgress: (p) => (progress = p),
                }),
              () => heartbeat({ sddc, phase: 'channel', channel: input.channel, ...progress }),
            );
            log.info('channel item synced', {
              item: synced.item.name,
              itemId: synced.item.id,
              version: ref.version,
              status: synced.status,
              bytesCopied: synced.bytesCopied,
            });
            return { status: synced.status, placement: placementOf(conn.target, synced.item), bytesCopied: synced.bytesCopied };
          } catch (err) {
            if (signal.aborted && cancellationDetails()?.cancelRequested) {
              log.info('channel update cancelled; its update session was cancelled', { sddc, channel: input.channel });
            }
            throw err;
          } finally {
            await releaseLock(lock, holder);
          }
        },
        () => validateChannelName(input.channel),
      );
    },
  };
}

export type ChannelItemActivities = ReturnType<typeof createChannelItemActivities>;
