import type { Collection, Db, ObjectId } from 'mongodb';
import { isDuplicateKey } from './duplicate-key';
import { MAX_DEPLOYMENT_ATTEMPTS, type DeploymentAttempt } from './deployment-records';
import type { RunRef } from './image-records';

/** Which deployment record an attempt belongs to. */
export interface DeploymentKey {
  image: string;
  version: string;
  sddc: string;
}

/** One attempt as the catalog stores it: a document of its own, so that attempts written at once all stay. */
type StoredAttempt = DeploymentAttempt & DeploymentKey & { _id?: string | ObjectId };

/** The `_id` of the attempt a run told with this status: told again (a retry), it replaces the one stored. */
function attemptId(key: DeploymentKey, runId: string, status: DeploymentAttempt['status']): string {
  return JSON.stringify([key.image, key.version, key.sddc, runId, status]);
}

/** The `deployment_attempts` collection: the history behind each deployment record. */
export class AttemptsRepository {
  readonly collection: Collection<StoredAttempt>;

  constructor(db: Db) {
    this.collection = db.collection<StoredAttempt>('deployment_attempts');
  }

  async createIndexes(): Promise<void> {
    await this.collection.createIndex({ image: 1, version: 1, sddc: 1, at: 1 }, { name: 'image_version_sddc_at' });
  }

  async insert(key: DeploymentKey, attempt: DeploymentAttempt): Promise<void> {
    await this.collection.insertOne({ ...key, ...attempt });
  }

  /**
   * Adds an attempt and, with `trim`, drops all but the last {@link MAX_DEPLOYMENT_ATTEMPTS}. Given the run
   * that made it, the same outcome told again by that run (an activity retried) replaces the one stored
   * before: it is stored under an `_id` made of the key, the run and the status.
   */
  async add(key: DeploymentKey, attempt: DeploymentAttempt, options: { trim: boolean }): Promise<void> {
    if (attempt.run === undefined) await this.insert(key, attempt);
    else {
      const _id = attemptId(key, attempt.run.runId, attempt.status);
      // Told twice at once, both try to insert: the one that loses replaces what the other stored.
      await this.collection.replaceOne({ _id }, { ...key, ...attempt }, { upsert: true }).catch((err: unknown) => {
        if (!isDuplicateKey(err)) throw err;
        return this.collection.replaceOne({ _id }, { ...key, ...attempt });
      });
    }
    if (!options.trim) return;
    const older = await this.collection
      .find(key, { projection: { _id: 1 }, sort: { at: -1 }, skip: MAX_DEPLOYMENT_ATTEMPTS })
      .toArray();
    if (older.length > 0) await this.collection.deleteMany({ _id: { $in: older.map((o) => o._id) } });
  }

  /**
   * {@link add} for one attempt on each of many SDDCs of one version, in four writes whatever their number:
   * the run's attempt replaces the one it stored before, and each SDDC keeps its last
   * {@link MAX_DEPLOYMENT_ATTEMPTS}.
   */
  async addMany(keys: DeploymentKey[], attempt: DeploymentAttempt & { run: RunRef }): Promise<void> {
    if (keys.length === 0) return;
    const { image, version } = keys[0];
    const sddcs = keys.map((k) => k.sddc);
    const ids = keys.map((key) => attemptId(key, attempt.run.runId, attempt.status));
    await this.collection.deleteMany({ _id: { $in: ids } });
    await this.collection.insertMany(keys.map((key, i) => ({ _id: ids[i], ...key, ...attempt })));
    const stored = await this.collection
      .find({ image, version, sddc: { $in: sddcs } }, { projection: { _id: 1, sddc: 1 }, sort: { at: -1 } })
      .toArray();
    const seen = new Map<string, number>();
    const older = stored.filter((a) => {
      const n = (seen.get(a.sddc) ?? 0) + 1;
      seen.set(a.sddc, n);
      return n > MAX_DEPLOYMENT_ATTEMPTS;
    });
    if (older.length > 0) await this.collection.deleteMany({ _id: { $in: older.map((o) => o._id) } });
  }

  /** The attempts at one version on each of these SDDCs, oldest first. */
  async bySddc(image: string, version: string, sddcs: string[]): Promise<Map<string, DeploymentAttempt[]>> {
    const stored = await this.collection
      .find({ image, version, sddc: { $in: sddcs } }, { projection: { _id: 0 }, sort: { at: 1 } })
      .toArray();
    const bySddc = new Map<string, DeploymentAttempt[]>();
    for (const { image: _image, version: _version, sddc, ...attempt } of stored) {
      bySddc.set(sddc, [...(bySddc.get(sddc) ?? []), attempt]);
    }
    return bySddc;
  }
}
