import { activityInfo, log } from '@temporalio/activity';
import type { ReplicaRecord } from '../catalog/image-records';
import { loadTrustedKeys } from '../provenance/keys';
import { withFailures } from '../shared/failures';
import { replicateImage, type ReplicateCheckpoint, type ReplicateInput } from '../publish/replicate';
import { heartbeatLiveness } from './keep-beating';
import type { PublishDeps } from './publish';
import { transferSignal } from './transfer-signal';

export type { ReplicateCheckpoint, ReplicateInput };

/** Copies committed images from the primary to replica locations (src/publish/replicate.ts). */
export function createReplicationActivities({ storage, catalog, config }: PublishDeps) {
  // Read once at start, as an agent reads its keys: a key file that cannot be read stops the worker.
  const trusted = loadTrustedKeys(config.trustedKeys);
  return {
    async replicaLocations(): Promise<{ replicas: string[] }> {
      return { replicas: storage.topology.storage.filter((s) => s.role === 'replica').map((s) => s.id) };
    },

    async replicateImage(input: ReplicateInput): Promise<ReplicaRecord> {
      return withFailures(() =>
        replicateImage({ storage, catalog, concurrency: config.transferConcurrency, trusted }, input, {
          resumed: activityInfo().heartbeatDetails as ReplicateCheckpoint | undefined,
          signal: transferSignal(config.transferConcurrency),
          liveness: heartbeatLiveness,
          log,
        }),
      );
    },
  };
}
