import type { Collection, Db } from 'mongodb';
import type { RunRef } from './image-records';

/** A running deploy's hold on the version it deploys: a retire is refused while a live run holds one. */
export interface DeployLease extends RunRef {
  image: string;
  version: string;
  since: Date;
}

type StoredLease = DeployLease & { _id: string };

/**
 * The `deploy_leases` collection: one lease per deploy workflow ID, written before the deploy's agents
 * download anything and deleted when it ends. Keyed by the workflow ID, not the run, so a reset or a
 * retried activity finds and replaces its own lease.
 */
export class DeployLeasesRepository {
  readonly collection: Collection<StoredLease>;

  constructor(db: Db) {
    this.collection = db.collection<StoredLease>('deploy_leases');
  }

  async createIndexes(): Promise<void> {
    await this.collection.createIndex({ image: 1, version: 1 }, { name: 'lease_image_version' });
  }

  async hold(lease: Omit<DeployLease, 'since'>): Promise<void> {
    const { workflowId, runId, image, version } = lease;
    await this.collection.updateOne(
      { _id: workflowId },
      { $set: { workflowId, runId, image, version, since: new Date() } },
      { upsert: true },
    );
  }

  async release(workflowId: string): Promise<void> {
    await this.collection.deleteOne({ _id: workflowId });
  }

  /** Removes a lease left by a run that ended without releasing it, unless its deploy has taken it again since. */
  async drop(lease: RunRef): Promise<void> {
    await this.collection.deleteOne({ _id: lease.workflowId, runId: lease.runId });
  }

  of(image: string, version: string): Promise<DeployLease[]> {
    return this.collection.find({ image, version }, { projection: { _id: 0 }, sort: { since: 1 } }).toArray();
  }
}
