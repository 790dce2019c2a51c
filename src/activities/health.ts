import type { PublishDeps } from './publish';

export interface HealthReport {
  token: string;
  blobs: Array<{ storage: string; container: string; blob: string; etag: string }>;
  catalogCollection: string;
}

/** How recently a transfer worker must have polled for a publish to count on it. */
const TRANSFER_WORKER_ALIVE_MS = 5 * 60_000;

/** Whether the services and the workers a run needs are there. */
export function createHealthActivities({ storage, catalog, temporal }: PublishDeps) {
  return {
    /** Workers that polled the transfer queue within the last five minutes: with none, a publish's transfers would only wait. */
    async transferWorkersPolling(input: { taskQueue: string }): Promise<number> {
      return temporal.recentPollers(input.taskQueue, 'activity', TRANSFER_WORKER_ALIVE_MS);
    },

    /** Writes a small marker to every storage location and to the catalog: proves a worker reaches each service. */
    async checkServices(token: string): Promise<HealthReport> {
      const body = JSON.stringify({ token, at: new Date().toISOString() });
      const blobs = await Promise.all(
        storage.topology.storage.map(async (location) => {
          const store = storage.store(location.id);
          await store.createContainer();
          const blob = `_vmhub/health/${token}.json`;
          const res = await store.upload(blob, body, { contentType: 'application/json' });
          return { storage: location.id, container: location.container, blob, etag: res.etag };
        }),
      );
      await catalog.db.collection('health').replaceOne({ _id: token as never }, { token, at: new Date() }, { upsert: true });
      return { token, blobs, catalogCollection: 'health' };
    },
  };
}
