import type { Collection, Db } from 'mongodb';
import type { ReplicaRecord, ReplicaStatus } from './image-records';

/**
 * Each replica's state is a document of its own, keyed by (image, version, location), so updates of two
 * locations never touch one document: no backend can lose one to the other (FerretDB's SQLite backend
 * applies an update to a document by reading and rewriting it). Every version record read carries its list.
 */
export type StoredReplica = ReplicaRecord & { image: string; version: string };

/** The `replicas` collection; writes that depend on the version's state go through the versions repository. */
export class ReplicasRepository {
  readonly collection: Collection<StoredReplica>;

  constructor(db: Db) {
    this.collection = db.collection<StoredReplica>('replicas');
  }

  async createIndexes(): Promise<void> {
    await this.collection.createIndex({ image: 1, version: 1, location: 1 }, { unique: true, name: 'image_version_location' });
  }

  /** The replicas of every version of these images. */
  ofImages(images: string[]): Promise<StoredReplica[]> {
    return this.collection.find({ image: { $in: images } }, { projection: { _id: 0 } }).toArray();
  }

  /** How many replica records each location holds in each state: what `vmhub_replicas` reports. */
  async countByState(): Promise<Array<{ location: string; state: ReplicaStatus; count: number }>> {
    const groups = await this.collection
      .aggregate<{ _id: { location: string; status: ReplicaStatus }; count: number }>([
        { $group: { _id: { location: '$location', status: '$status' }, count: { $sum: 1 } } },
      ])
      .toArray();
    return groups.map((g) => ({ location: g._id.location, state: g._id.status, count: g.count }));
  }

  async put(image: string, version: string, replica: ReplicaRecord): Promise<void> {
    await this.collection.replaceOne(
      { image, version, location: replica.location },
      { image, version, ...replica },
      { upsert: true },
    );
  }

  async remove(image: string, version: string, location: string): Promise<void> {
    await this.collection.deleteOne({ image, version, location });
  }

  /** Drops every replica record of a version. */
  async clear(image: string, version: string): Promise<void> {
    await this.collection.deleteMany({ image, version });
  }
}
