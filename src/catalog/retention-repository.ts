import type { Collection, Db } from 'mongodb';
import type { RetentionPolicy } from './retention-records';

type StoredPolicy = RetentionPolicy & { updatedAt: Date };

/** The `retention_policies` collection: at most one policy per image. */
export class RetentionRepository {
  readonly collection: Collection<StoredPolicy>;

  constructor(db: Db) {
    this.collection = db.collection<StoredPolicy>('retention_policies');
  }

  async createIndexes(): Promise<void> {
    await this.collection.createIndex({ image: 1 }, { unique: true, name: 'retention_image' });
  }

  async set(policy: RetentionPolicy): Promise<RetentionPolicy> {
    await this.collection.updateOne({ image: policy.image }, { $set: { ...policy, updatedAt: new Date() } }, { upsert: true });
    return policy;
  }

  async get(image: string): Promise<RetentionPolicy | null> {
    return this.collection.findOne({ image }, { projection: { _id: 0, updatedAt: 0 } });
  }

  list(): Promise<RetentionPolicy[]> {
    return this.collection.find({}, { projection: { _id: 0, updatedAt: 0 }, sort: { image: 1 } }).toArray();
  }

  async clear(image: string): Promise<boolean> {
    return (await this.collection.deleteOne({ image })).deletedCount === 1;
  }
}
