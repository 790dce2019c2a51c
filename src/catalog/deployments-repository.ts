import type { Collection, Db, ObjectId, UpdateFilter } from 'mongodb';
import type { AttemptsRepository, DeploymentKey } from './attempts-repository';
import {
  attemptOf,
  MAX_DEPLOYMENT_ATTEMPTS,
  RETIRED_WHILE_DEPLOYING,
  type DeploymentAttempt,
  type DeploymentRecord,
  type DeploymentUpdate,
} from './deployment-records';
import { withoutUndefined } from './documents';
import { isDuplicateKey } from './duplicate-key';
import type { RunRef } from './image-records';
import type { VersionsRepository } from './versions-repository';

/** The fields of a deployment record an attempt may leave out: absent, they are removed from the record. */
const OPTIONAL_DEPLOYMENT_FIELDS = [
  'source',
  'path',
  'bytes',
  'bytesFetched',
  'bytesReusedLocally',
  'target',
  'instantiated',
  'gate',
  'error',
  'run',
] as const;

/** A deployment record as stored: under its own `_id` ({@link deploymentId}), or a driver-made one if written before. */
type StoredDeployment = DeploymentRecord & {
  _id?: string | ObjectId;
  /** How many attempts were told (a retried one counts again): when it exceeds what is kept, older attempts are dropped. */
  attemptsTold?: number;
};

/** A deployment record's `_id`: its key, so that it is found without reading the collection. */
export function deploymentId(key: DeploymentKey): string {
  return JSON.stringify([key.image, key.version, key.sddc]);
}

/** The `deployments` collection: one record per version and SDDC, the latest attempt's fields; its history is in attempts. */
export class DeploymentsRepository {
  readonly collection: Collection<StoredDeployment>;

  constructor(
    db: Db,
    private readonly attempts: AttemptsRepository,
    private readonly versions: VersionsRepository,
  ) {
    this.collection = db.collection<StoredDeployment>('deployments');
  }

  async createIndexes(): Promise<void> {
    await this.collection.createIndex({ image: 1, version: 1, sddc: 1 }, { unique: true, name: 'image_version_sddc' });
  }

  /**
   * Records an attempt to deploy to one SDDC: the record's top-level fields become this attempt's, and
   * the attempt joins its history (the last `MAX_DEPLOYMENT_ATTEMPTS`). The first attempt that
   * deployed stays the record's `origin` until a removal. Given the run that made it (`run`), the same
   * outcome told again by that run (an activity retried) is one attempt, not two. A copy reported once a
   * retire has claimed the version is stored as `failed` (reason: retired): the retire may have listed the
   * SDDCs already, so the copy must not read as a deployed version.
   */
  async record(reported: DeploymentUpdate): Promise<void> {
    let d = reported;
    if (d.status === 'deployed' || d.status === 'already-present') {
      const status = await this.versions.status(d.image, d.version);
      if (status === 'retiring' || status === 'retired') d = { ...d, status: 'failed', error: RETIRED_WHILE_DEPLOYING };
    }
    const key = { image: d.image, version: d.version, sddc: d.sddc };
    const now = new Date();
    const attempt = attemptOf(d, now);
    const unset = Object.fromEntries(OPTIONAL_DEPLOYMENT_FIELDS.filter((f) => d[f] === undefined).map((f) => [f, '' as const]));
    if (d.status === 'removed') unset.origin = '';
    const update = {
      $set: { ...withoutUndefined(d), updatedAt: now, ...(d.status === 'deployed' ? { deployedAt: now } : {}) },
      $min: { firstAttemptAt: now },
      $inc: { attemptsTold: 1 },
      ...(Object.keys(unset).length > 0 ? { $unset: unset } : {}),
    };
    const previous = await this.updateById(key, update);
    if (previous === 'legacy') return this.recordByKey(key, d, update, attempt);
    if (d.status === 'deployed' && !previous?.origin) {
      await this.collection.updateOne({ _id: deploymentId(key), origin: { $exists: false } }, { $set: { origin: attempt } });
    }
    // Attempts are trimmed only once the record may hold more than it keeps: the count of attempts told is an upper bound.
    await this.attempts.add(key, attempt, { trim: (previous?.attemptsTold ?? 0) + 1 > MAX_DEPLOYMENT_ATTEMPTS });
  }

  /**
   * Updates (or creates) the record under its own `_id`, which every catalog server finds without reading the
   * collection; returns the record as it was, or 'legacy' for a record stored under another `_id` (written
   * before records had one of their own).
   */
  private async updateById(
    key: DeploymentKey,
    update: UpdateFilter<StoredDeployment>,
  ): Promise<StoredDeployment | null | 'legacy'> {
    const _id = deploymentId(key);
    const options = { returnDocument: 'before' as const, includeResultMetadata: false };
    try {
      return await this.collection.findOneAndUpdate({ _id }, update, { ...options, upsert: true });
    } catch (err) {
      if (!isDuplicateKey(err)) throw err;
    }
    // Lost to a first attempt made at the same moment (the record now exists), or to a legacy record of the same key.
    const previous = await this.collection.findOneAndUpdate({ _id }, update, options);
    return previous ?? 'legacy';
  }

  /** A record stored before records had an `_id` of their own: found by its key, as it always was. */
  private async recordByKey(
    key: DeploymentKey,
    d: DeploymentUpdate,
    update: UpdateFilter<StoredDeployment>,
    attempt: DeploymentAttempt,
  ): Promise<void> {
    await this.keepLegacyState(key);
    await this.collection.updateOne(key, update);
    if (d.status === 'deployed') {
      await this.collection.updateOne({ ...key, origin: { $exists: false } }, { $set: { origin: attempt } });
    }
    await this.attempts.add(key, attempt, { trim: true });
  }

  /**
   * Records a retire's removal of the version from each of these SDDCs, as {@link record} would one by one,
   * in a handful of writes whatever their number (a batch of a fleet costs what one SDDC does). Told again
   * by the same run (an activity retried), each removal stays one attempt. Plain multi-document writes,
   * not bulkWrite: concurrent bulk writes can wedge a FerretDB on SQLite.
   */
  async recordRemovals(image: string, version: string, sddcs: string[], run: RunRef): Promise<void> {
    if (sddcs.length === 0) return;
    const legacy = await this.collection
      .find({ image, version, sddc: { $in: sddcs }, firstAttemptAt: { $exists: false } }, { projection: { sddc: 1 } })
      .toArray();
    for (const { sddc } of legacy) await this.keepLegacyState({ image, version, sddc });
    const now = new Date();
    const cleared = [...OPTIONAL_DEPLOYMENT_FIELDS.filter((f) => f !== 'run'), 'origin'];
    // The holders a retire removes have records: a deploy wrote them, and the retire listed them from there.
    await this.collection.updateMany(
      { image, version, sddc: { $in: sddcs } },
      {
        $set: { status: 'removed', run, updatedAt: now },
        $min: { firstAttemptAt: now },
        $inc: { attemptsTold: 1 },
        $unset: Object.fromEntries(cleared.map((f) => [f, '' as const])),
      },
    );
    await this.attempts.addMany(
      sddcs.map((sddc) => ({ image, version, sddc })),
      { status: 'removed', at: now, run },
    );
  }

  /**
   * A record written before attempts were kept says only its latest state: that state becomes its first
   * attempt, and, if it deployed, its origin, before a new attempt replaces it.
   */
  private async keepLegacyState(key: DeploymentKey): Promise<void> {
    // A record is created with firstAttemptAt in the same write: one without it predates attempts.
    const previous = await this.collection.findOne(key, { projection: { _id: 0 } });
    if (!previous || previous.firstAttemptAt) return;
    const attempt = attemptOf(previous, previous.deployedAt ?? previous.updatedAt);
    await this.attempts.insert(key, attempt);
    const origin = previous.status === 'deployed' && !previous.origin ? { origin: attempt } : {};
    await this.collection.updateOne(
      { ...key, firstAttemptAt: { $exists: false } },
      { $set: { firstAttemptAt: attempt.at, ...origin } },
    );
  }

  /** Where a version is deployed (or was tried), one row per SDDC, each with its attempts, oldest first. */
  async of(image: string, version: string): Promise<DeploymentRecord[]> {
    const records = await this.collection.find({ image, version }, { projection: { _id: 0 }, sort: { sddc: 1 } }).toArray();
    if (records.length === 0) return [];
    const attempts = await this.attempts.bySddc(
      image,
      version,
      records.map((r) => r.sddc),
    );
    return records.map((r) => ({ ...r, attempts: attempts.get(r.sddc) ?? [] }));
  }

  /**
   * The records of a version whose latest attempt, made by deploy run `workflowId` or one of its batches
   * (`<workflowId>:<n>-<data center>`), failed or was skipped: what `deploy --retry` reads when the run's
   * result left rows out. The run is matched here, not in the query, so its ID needs no escaping into a pattern.
   */
  async unfinishedBy(image: string, version: string, workflowId: string): Promise<DeploymentRecord[]> {
    const records = await this.collection
      .find({ image, version, status: { $in: ['failed', 'skipped'] } }, { projection: { _id: 0 }, sort: { sddc: 1 } })
      .toArray();
    const ofRun = (id: string | undefined) => id === workflowId || (id ?? '').startsWith(`${workflowId}:`);
    return records.filter((r) => ofRun(r.run?.workflowId));
  }

  /** The copies these SDDCs hold as far as the catalog knows (deployed, already present, or drifted), by SDDC and version. */
  async heldBy(sddcs: string[]): Promise<DeploymentRecord[]> {
    if (sddcs.length === 0) return [];
    return this.collection
      .find(
        { sddc: { $in: sddcs }, status: { $in: ['deployed', 'already-present', 'drifted'] } },
        { projection: { _id: 0 }, sort: { sddc: 1, image: 1, version: 1 } },
      )
      .toArray();
  }

  /**
   * Marks a copy `drifted`, saying how in `error`, and adds that as an attempt; where it is and where it came
   * from stay, for the repair and a retire. A record in another state (removed meanwhile) is left alone.
   */
  async markDrifted(key: DeploymentKey, reason: string): Promise<boolean> {
    const now = new Date();
    const held = { status: { $in: ['deployed', 'already-present', 'drifted'] } } as const;
    const done = await this.collection.updateOne(
      { ...key, ...held },
      { $set: { status: 'drifted', error: reason, updatedAt: now }, $inc: { attemptsTold: 1 } },
    );
    if (done.matchedCount === 0) return false;
    await this.attempts.add(key, { status: 'drifted', reason, at: now }, { trim: true });
    return true;
  }

  /** Versions of an image some SDDC holds (deployed, already present or drifted there). */
  async heldVersions(image: string): Promise<Set<string>> {
    const rows = await this.collection
      // A later attempt that failed or was skipped leaves the copy an earlier one made: its origin says so.
      .find(
        { image, $or: [{ status: { $in: ['deployed', 'already-present', 'drifted'] } }, { origin: { $exists: true } }] },
        { projection: { _id: 0, version: 1 } },
      )
      .toArray();
    return new Set(rows.map((r) => r.version));
  }
}
