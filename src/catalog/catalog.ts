import { MongoClient, MongoServerError, type Collection, type Db, type Filter } from 'mongodb';
import semver from 'semver';
import type { Capacity } from '../topology/topology';
import type { ImageFormat } from '../images/format';
import type { ImageMetadata } from '../images/inspect';
import { VmhubError } from '../errors';
import { isLatestRef, LATEST_PRE, validateSddcName } from '../names';
import { checkCapacity } from '../sddc/registry';
import type { Deprecation } from '../lifecycle/deprecation';
import type { RetentionPolicy } from '../lifecycle/retention';
import type { BlobLocation } from '../publish/input';
import type { InstantiateCheck, LibraryPlacement } from '../sddc/kinds/content-library';
import type { SddcTarget } from '../sddc/target';

/** The catalog in MongoDB (docs/architecture.md): image versions, replicas, SDDCs, deployments and their attempts. */
export type VersionStatus = 'uploading' | 'available' | 'failed' | 'cancelled' | 'retiring' | 'retired';

/** The workflow run that holds an `uploading` claim: only it may commit, mark available or abandon. */
export interface RunRef {
  workflowId: string;
  runId: string;
}

export interface ImageVersionRecord {
  image: string;
  version: string;
  status: VersionStatus;
  owner?: RunRef;
  format: ImageFormat;
  sizeBytes: number;
  sha256?: string;
  location: BlobLocation;
  blockSize: number;
  blockCount: number;
  metadata?: ImageMetadata;
  replicas: ReplicaRecord[];
  error?: string;
  /** Blocks this version shares with the version published before it, noted when it became available. */
  overlap?: VersionOverlap;
  createdAt: Date;
  updatedAt: Date;
  publishedAt?: Date;
  /** Set by `vmhub deprecate`: the version is left out of `latest`, and refused past its end of life. */
  deprecation?: Deprecation;
  /**
   * The tombstone RetireImage leaves: when, and by which run (also the run holding a `retiring` claim,
   * and what the version was before: `retiring` when the claim was taken over from a closed run).
   */
  retired?: { at?: Date; by: RunRef; from?: 'available' | 'retiring' };
}

export type ReplicaStatus = 'pending' | 'verified' | 'stale' | 'failed';

/** What a version shares with the highest earlier available version of its image, at one block size. */
export interface VersionOverlap {
  previousVersion: string;
  sharedBlocks: number;
  blockCount: number;
}

export interface ReplicaRecord {
  location: string;
  status: ReplicaStatus;
  etag?: string;
  sha256?: string;
  verifiedAt?: Date;
  reason?: string;
}

export interface SddcRecord {
  name: string;
  dataCenter: string;
  taskQueue: string;
  capacity: Capacity;
  /** Where its agent puts images; a record without one deploys into a directory. */
  target?: SddcTarget;
  createdAt: Date;
  /** Set by the last `updateSddc`; absent on a record never changed since it was created. */
  updatedAt?: Date;
}

export type NewSddc = Omit<SddcRecord, 'createdAt' | 'updatedAt'>;

/** The fields `updateSddc` may change; capacity field by field, a target as a whole. */
export interface SddcChanges {
  dataCenter?: string;
  taskQueue?: string;
  capacity?: Partial<Capacity>;
  target?: SddcTarget;
}

export type DeploymentStatus = 'deploying' | 'deployed' | 'already-present' | 'skipped' | 'failed' | 'removed';

export interface DeploymentRecord {
  image: string;
  version: string;
  sddc: string;
  status: DeploymentStatus;
  source?: string;
  path?: string;
  bytes?: number;
  /** Bytes the agent downloaded, and bytes it copied from an earlier version on its disk (delta deploy). */
  bytesFetched?: number;
  bytesReusedLocally?: number;
  /** The content library item the image became, for a content-library SDDC. */
  target?: LibraryPlacement;
  instantiated?: InstantiateCheck;
  error?: string;
  startedAt?: Date;
  updatedAt: Date;
  deployedAt?: Date;
  /** The deploy run that made the latest attempt, when the writer said. */
  run?: RunRef;
  /** When the first attempt kept in the history was made; absent on a record written before attempts were kept. */
  firstAttemptAt?: Date;
  /**
   * Every attempt, oldest first, the last {@link MAX_DEPLOYMENT_ATTEMPTS}; the top-level fields above are
   * the latest one's. Filled in when read (attempts are documents of their own).
   */
  attempts?: DeploymentAttempt[];
  /** The first attempt that deployed the bytes: where they originally came from, kept when older attempts are dropped. */
  origin?: DeploymentAttempt;
}

/** One try of a deploy to one SDDC, as `recordDeployment` was told it. */
export interface DeploymentAttempt {
  status: DeploymentStatus;
  /** The storage location (primary or replica) the bytes came from. */
  source?: string;
  /** Why it failed or was skipped. */
  reason?: string;
  at: Date;
  /** The deploy run that made the attempt, when the writer said. */
  run?: RunRef;
}

/** How many attempts a deployment record keeps; older ones are dropped (the origin stays). */
export const MAX_DEPLOYMENT_ATTEMPTS = 20;

/** What `recordDeployment` is told: the latest attempt's fields. */
export type DeploymentUpdate = Omit<DeploymentRecord, 'updatedAt' | 'deployedAt' | 'firstAttemptAt' | 'attempts' | 'origin'>;

/** What a version needs, compared with an SDDC's capacity (disk in bytes, memory in MiB). */
export interface Requirements {
  cpus?: number;
  memoryMiB?: number;
  diskBytes?: number;
}

/** Filters of an image listing; every one given must hold (they combine with AND). */
export interface VersionFilters {
  image?: string;
  /** The guest OS type the image declares, e.g. ubuntu64Guest. */
  osType?: string;
  /** Only versions whose declared resources fit within these. */
  fits?: Requirements;
  /** Only versions in one of these states; all states when absent. */
  status?: VersionStatus | VersionStatus[];
}

/**
 * The one query behind every image listing. A capacity filter needs the version to declare its resources
 * (an ISO does not, so it never "fits"); each requirement given bounds the matching resource.
 */
export function versionQuery(filters: VersionFilters): Filter<StoredVersion> {
  const query: Filter<StoredVersion> = {};
  if (filters.image !== undefined) query.image = filters.image;
  if (filters.status !== undefined) {
    query.status = Array.isArray(filters.status) ? { $in: filters.status } : filters.status;
  }
  const { fits } = filters;
  if (fits) query['metadata.resources'] = { $exists: true };
  if (fits?.cpus !== undefined) query['metadata.resources.cpus'] = { $lte: fits.cpus };
  if (fits?.memoryMiB !== undefined) query['metadata.resources.memoryMiB'] = { $lte: fits.memoryMiB };
  if (fits?.diskBytes !== undefined) query['metadata.resources.diskBytes'] = { $lte: fits.diskBytes };
  if (filters.osType !== undefined) query['metadata.os.osType'] = filters.osType;
  return query;
}

export type ClaimResult =
  { state: 'claimed' } | { state: 'available'; record: ImageVersionRecord } | { state: 'owned'; owner: RunRef | undefined };

/** What claiming a version for a retire found; `owned`: another run holds the `retiring` claim. */
export type RetireClaim =
  | { state: 'claimed'; record: ImageVersionRecord; previous: 'available' | 'retiring' }
  | { state: 'owned'; owner: RunRef | undefined }
  | { state: 'retired' }
  | { state: 'unavailable'; status: VersionStatus | undefined };

/** The reason a deploy's row gets when its copy lands after a retire claimed the version. */
export const RETIRED_WHILE_DEPLOYING = 'retired: the version was claimed by a retire while it was being deployed';

export type NewVersion = Pick<
  ImageVersionRecord,
  'image' | 'version' | 'format' | 'sizeBytes' | 'location' | 'blockSize' | 'blockCount'
>;

const DUPLICATE_KEY = 11000;

/** The driver stores an undefined field as null: leave such fields out instead. */
function withoutUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

function unknownSddc(name: string, registered: SddcRecord[]): VmhubError {
  const shown = registered.slice(0, 10).map((s) => s.name);
  const names = (registered.length > 10 ? [...shown, `and ${registered.length - 10} more`] : shown).join(', ') || 'none';
  return new VmhubError(
    'UnknownSddc',
    `SDDC ${name} is not registered (registered: ${names}); add it with \`vmhub sddc add ${name} --dc <data center>\``,
  );
}

/** One attempt as the catalog stores it: a document of its own, so that attempts written at once all stay. */
type StoredAttempt = DeploymentAttempt & { image: string; version: string; sddc: string };

/** The fields of a deployment record an attempt may leave out: absent, they are removed from the record. */
const OPTIONAL_DEPLOYMENT_FIELDS = [
  'source',
  'path',
  'bytes',
  'bytesFetched',
  'bytesReusedLocally',
  'target',
  'instantiated',
  'error',
  'run',
] as const;

/** What an attempt records of a deployment update. */
export function attemptOf(d: Pick<DeploymentRecord, 'status' | 'source' | 'error' | 'run'>, at: Date): DeploymentAttempt {
  return withoutUndefined({ status: d.status, source: d.source, reason: d.error, at, run: d.run });
}

/**
 * Where the bytes on an SDDC originally came from: the storage location of the first attempt that
 * deployed them since the SDDC last held no copy (a removal ends an origin). For a record written before
 * attempts were kept, its own source if it says it deployed.
 */
export function originalSource(record: DeploymentRecord): string | undefined {
  if (record.origin) return record.origin.source;
  const legacy = (record.attempts ?? []).length === 0 && record.status === 'deployed';
  return legacy ? record.source : undefined;
}

/**
 * Each replica's state is a document of its own, keyed by (image, version, location), so updates of two
 * locations never touch one document: no backend can lose one to the other (FerretDB's SQLite backend
 * applies an update to a document by reading and rewriting it). Every version record read carries its list.
 */
export type StoredVersion = Omit<ImageVersionRecord, 'replicas'>;
type StoredReplica = ReplicaRecord & { image: string; version: string };

export class Catalog {
  readonly versions: Collection<StoredVersion>;
  readonly replicas: Collection<StoredReplica>;
  readonly sddcs: Collection<SddcRecord>;
  readonly deployments: Collection<DeploymentRecord>;
  readonly attempts: Collection<StoredAttempt>;
  readonly retention: Collection<RetentionPolicy & { updatedAt: Date }>;

  constructor(
    readonly db: Db,
    private readonly client?: MongoClient,
  ) {
    this.versions = db.collection<StoredVersion>('image_versions');
    this.replicas = db.collection<StoredReplica>('replicas');
    this.sddcs = db.collection<SddcRecord>('sddcs');
    this.deployments = db.collection<DeploymentRecord>('deployments');
    this.attempts = db.collection<StoredAttempt>('deployment_attempts');
    this.retention = db.collection<RetentionPolicy & { updatedAt: Date }>('retention_policies');
  }

  /** `timeoutMs` bounds how long an unreachable server is waited for (default 10 s). */
  static async connect(uri: string, options: { timeoutMs?: number } = {}): Promise<Catalog> {
    const client = new MongoClient(uri, { serverSelectionTimeoutMS: options.timeoutMs ?? 10_000, appName: 'vmhub' });
    await client.connect();
    const catalog = new Catalog(client.db(), client);
    await catalog.ensureIndexes();
    return catalog;
  }

  async ensureIndexes(): Promise<void> {
    await this.versions.createIndex({ image: 1, version: 1 }, { unique: true, name: 'image_version' });
    await this.replicas.createIndex({ image: 1, version: 1, location: 1 }, { unique: true, name: 'image_version_location' });
    await this.sddcs.createIndex({ name: 1 }, { unique: true, name: 'sddc_name' });
    await this.deployments.createIndex({ image: 1, version: 1, sddc: 1 }, { unique: true, name: 'image_version_sddc' });
    await this.attempts.createIndex({ image: 1, version: 1, sddc: 1, at: 1 }, { name: 'image_version_sddc_at' });
    await this.retention.createIndex({ image: 1 }, { unique: true, name: 'retention_image' });
  }

  async close(): Promise<void> {
    await this.client?.close();
  }

  async getVersion(image: string, version: string): Promise<ImageVersionRecord | null> {
    const record = await this.versions.findOne({ image, version }, { projection: { _id: 0 } });
    return record && (await this.withReplicas([record]))[0];
  }

  /**
   * Claims image@version for one run, unless it is available (the caller then compares digests) or
   * another run holds an `uploading` claim (the caller may take it over once that run has closed). A
   * failed or cancelled version, and the run's own claim, are claimed again.
   */
  async claimVersion(v: NewVersion, owner: RunRef): Promise<ClaimResult> {
    const claimed = await this.versions.updateOne(
      {
        image: v.image,
        version: v.version,
        $or: [{ status: { $in: ['failed', 'cancelled'] } }, { status: 'uploading', 'owner.runId': owner.runId }],
      },
      this.claimUpdate(v, owner),
    );
    if (claimed.matchedCount === 1) return this.clearReplicas(v);
    const now = new Date();
    try {
      await this.versions.insertOne({ ...v, status: 'uploading', owner, createdAt: now, updatedAt: now });
      return this.clearReplicas(v);
    } catch (err) {
      if (!(err instanceof MongoServerError && err.code === DUPLICATE_KEY)) throw err;
    }
    const record = await this.getVersion(v.image, v.version);
    if (record?.status === 'retiring' || record?.status === 'retired') {
      throw new VmhubError('VersionConflict', `${v.image}@${v.version} is ${record.status}; publish it under a new version`);
    }
    if (record?.status === 'available') return { state: 'available', record };
    if (record?.status === 'uploading' && record.owner?.runId !== owner.runId) return { state: 'owned', owner: record.owner };
    throw new Error(`catalog changed under the claim of ${v.image}@${v.version}; retrying`);
  }

  /** Takes over an `uploading` claim from a run known to have closed; false if the claim changed meanwhile. */
  async takeOver(v: NewVersion, owner: RunRef, previous: RunRef | undefined): Promise<boolean> {
    const result = await this.versions.updateOne(
      {
        image: v.image,
        version: v.version,
        status: 'uploading',
        ...(previous ? { 'owner.runId': previous.runId } : { owner: { $exists: false } }),
      },
      this.claimUpdate(v, owner),
    );
    if (result.matchedCount === 0) return false;
    await this.clearReplicas(v);
    return true;
  }

  /** New bytes may be coming: copies of earlier ones are no replicas of this version. */
  private async clearReplicas(v: NewVersion): Promise<{ state: 'claimed' }> {
    await this.replicas.deleteMany({ image: v.image, version: v.version });
    return { state: 'claimed' };
  }

  private async withReplicas(records: StoredVersion[]): Promise<ImageVersionRecord[]> {
    if (records.length === 0) return [];
    const images = [...new Set(records.map((r) => r.image))];
    const replicas = await this.replicas.find({ image: { $in: images } }, { projection: { _id: 0 } }).toArray();
    return records.map((r) => ({
      ...r,
      replicas: replicas
        .filter((x) => x.image === r.image && x.version === r.version)
        .map(({ image: _image, version: _version, ...replica }) => replica),
    }));
  }

  private claimUpdate(v: NewVersion, owner: RunRef) {
    return {
      $set: { ...v, status: 'uploading' as const, owner, updatedAt: new Date() },
      $unset: { error: '' as const, sha256: '' as const, metadata: '' as const },
    };
  }

  /** uploading → available, with the verified digest and metadata, for the claim's owner only. Repeating it is harmless. */
  async markAvailable(
    image: string,
    version: string,
    owner: RunRef,
    sha256: string,
    metadata: ImageMetadata,
  ): Promise<ImageVersionRecord | undefined> {
    const now = new Date();
    await this.versions.updateOne(
      { image, version, status: 'uploading', 'owner.runId': owner.runId },
      { $set: { status: 'available', sha256, metadata, publishedAt: now, updatedAt: now } },
    );
    const record = await this.getVersion(image, version);
    const ours = record?.status === 'available' && record.sha256 === sha256 && record.owner?.runId === owner.runId;
    return ours ? record : undefined;
  }

  /** Ends the owner's `uploading` claim as failed or cancelled; false when the run holds no such claim. */
  async endClaim(image: string, version: string, owner: RunRef, status: 'failed' | 'cancelled', error: string): Promise<boolean> {
    const result = await this.versions.updateOne(
      { image, version, status: 'uploading', 'owner.runId': owner.runId },
      { $set: { status, error, updatedAt: new Date() } },
    );
    return result.matchedCount === 1;
  }

  /** Versions of an image (or of every image), newest semantic version first. */
  async listVersions(image?: string, filter: Filter<StoredVersion> = {}): Promise<ImageVersionRecord[]> {
    const found = await this.versions.find({ ...(image ? { image } : {}), ...filter }, { projection: { _id: 0 } }).toArray();
    const records = await this.withReplicas(found);
    return records.sort((a, b) => a.image.localeCompare(b.image) || semver.rcompare(a.version, b.version));
  }

  /**
   * The highest available, non-deprecated release version of an image (semantic-version order, so
   * 1.0.0 is above 1.0.0-rc.1); with `includePrerelease`, pre-releases count too.
   */
  async latest(image: string, options: { includePrerelease?: boolean } = {}): Promise<ImageVersionRecord | undefined> {
    const available = await this.listVersions(image, { status: 'available', deprecation: { $exists: false } });
    return available.find((r) => options.includePrerelease || semver.prerelease(r.version) === null);
  }

  /**
   * What a reference names: `latest`, `latest-pre` (pre-releases counted) or an exact version, in any
   * state. Every command and activity that takes `<image>@<version|latest>` resolves it here.
   */
  async resolveVersion(image: string, ref: string): Promise<ImageVersionRecord | undefined> {
    if (isLatestRef(ref)) return this.latest(image, { includePrerelease: ref === LATEST_PRE });
    return (await this.getVersion(image, ref)) ?? undefined;
  }

  /** Versions that pass every filter given (see {@link versionQuery}), by image, newest first. */
  findVersions(filters: VersionFilters): Promise<ImageVersionRecord[]> {
    return this.listVersions(undefined, versionQuery(filters));
  }

  /** Available versions that pass every filter given: what can be deployed. */
  findAvailable(filters: Omit<VersionFilters, 'status'>): Promise<ImageVersionRecord[]> {
    return this.findVersions({ ...filters, status: 'available' });
  }

  async setOverlap(image: string, version: string, overlap: VersionOverlap): Promise<void> {
    await this.versions.updateOne({ image, version }, { $set: { overlap, updatedAt: new Date() } });
  }

  /**
   * Sets one replica's state while the version is available; false, and nothing kept, once it is not. A
   * check or copy that began before a retire claimed the version must not bring back the record the
   * retire removed: the write is checked again after it lands, and undone if the claim came meanwhile
   * (a write before the claim is removed by the retire itself).
   */
  async setReplica(image: string, version: string, replica: ReplicaRecord): Promise<boolean> {
    const status = async () => (await this.versions.findOne({ image, version }, { projection: { status: 1 } }))?.status;
    const before = await status();
    if (before === undefined) throw new Error(`no catalog record for ${image}@${version}`);
    if (before !== 'available') return false;
    await this.replicas.replaceOne(
      { image, version, location: replica.location },
      { image, version, ...replica },
      { upsert: true },
    );
    if ((await status()) === 'available') return true;
    await this.replicas.deleteOne({ image, version, location: replica.location });
    return false;
  }

  /** Registers or overwrites an SDDC: for setup scripts and tests; an operator's `sddc add` uses createSddc. */
  async addSddc(sddc: NewSddc): Promise<SddcRecord> {
    const record = { ...sddc, createdAt: new Date() };
    await this.sddcs.updateOne(
      { name: sddc.name },
      { $set: sddc, $setOnInsert: { createdAt: record.createdAt } },
      { upsert: true },
    );
    return (await this.getSddc(sddc.name))!;
  }

  /** Registers a new SDDC; `SddcExists` when the name is taken (change it with updateSddc). */
  async createSddc(sddc: NewSddc): Promise<SddcRecord> {
    validateSddcName(sddc.name);
    checkCapacity(sddc.capacity);
    try {
      await this.sddcs.insertOne({ ...withoutUndefined(sddc), createdAt: new Date() });
    } catch (err) {
      if (!(err instanceof MongoServerError && err.code === DUPLICATE_KEY)) throw err;
      throw new VmhubError(
        'SddcExists',
        `SDDC ${sddc.name} is already registered; change it with \`vmhub sddc update ${sddc.name}\` or remove it first`,
      );
    }
    return (await this.getSddc(sddc.name))!;
  }

  /**
   * Registers an SDDC unless one of that name exists, which is left as it is (an operator may have
   * changed it): the default SDDCs are registered this way at every start.
   */
  async ensureSddc(sddc: NewSddc): Promise<{ record: SddcRecord; created: boolean }> {
    const result = await this.sddcs.updateOne(
      { name: sddc.name },
      { $setOnInsert: { ...withoutUndefined(sddc), createdAt: new Date() } },
      { upsert: true },
    );
    return { record: (await this.getSddc(sddc.name))!, created: result.upsertedCount === 1 };
  }

  /** Changes only the fields given (capacity field by field); `UnknownSddc` when it is not registered. */
  async updateSddc(name: string, changes: SddcChanges): Promise<SddcRecord> {
    if (changes.capacity) checkCapacity(changes.capacity);
    const set: Record<string, unknown> = { updatedAt: new Date() };
    if (changes.dataCenter !== undefined) set.dataCenter = changes.dataCenter;
    if (changes.taskQueue !== undefined) set.taskQueue = changes.taskQueue;
    if (changes.target !== undefined) set.target = changes.target;
    for (const [key, value] of Object.entries(changes.capacity ?? {})) {
      if (value !== undefined) set[`capacity.${key}`] = value;
    }
    const result = await this.sddcs.updateOne({ name }, { $set: set });
    if (result.matchedCount === 0) throw unknownSddc(name, await this.listSddcs());
    return (await this.getSddc(name))!;
  }

  async getSddc(name: string): Promise<SddcRecord | null> {
    return this.sddcs.findOne({ name }, { projection: { _id: 0 } });
  }

  /** The SDDC's record; `UnknownSddc`, naming the registered ones and `vmhub sddc add`, when there is none. */
  async requireSddc(name: string): Promise<SddcRecord> {
    return (await this.getSddc(name)) ?? Promise.reject(unknownSddc(name, await this.listSddcs()));
  }

  listSddcs(): Promise<SddcRecord[]> {
    return this.sddcs.find({}, { projection: { _id: 0 }, sort: { name: 1 } }).toArray();
  }

  async removeSddc(name: string): Promise<boolean> {
    return (await this.sddcs.deleteOne({ name })).deletedCount === 1;
  }

  /**
   * Records an attempt to deploy to one SDDC: the record's top-level fields become this attempt's, and
   * the attempt joins its history (the last {@link MAX_DEPLOYMENT_ATTEMPTS}). The first attempt that
   * deployed stays the record's `origin` until a removal. Given the run that made it (`run`), the same
   * outcome told again by that run (an activity retried) is one attempt, not two. A copy reported once a
   * retire has claimed the version is stored as `failed` (reason: retired): the retire may have listed the
   * SDDCs already, so the copy must not read as a deployed version.
   */
  async recordDeployment(reported: DeploymentUpdate): Promise<void> {
    let d = reported;
    if (d.status === 'deployed' || d.status === 'already-present') {
      const v = await this.versions.findOne({ image: d.image, version: d.version }, { projection: { status: 1 } });
      if (v?.status === 'retiring' || v?.status === 'retired') d = { ...d, status: 'failed', error: RETIRED_WHILE_DEPLOYING };
    }
    const key = { image: d.image, version: d.version, sddc: d.sddc };
    const now = new Date();
    await this.keepLegacyState(key);
    const attempt = attemptOf(d, now);
    const unset = Object.fromEntries(OPTIONAL_DEPLOYMENT_FIELDS.filter((f) => d[f] === undefined).map((f) => [f, '' as const]));
    if (d.status === 'removed') unset.origin = '';
    const update = {
      $set: { ...withoutUndefined(d), updatedAt: now, ...(d.status === 'deployed' ? { deployedAt: now } : {}) },
      $min: { firstAttemptAt: now },
      ...(Object.keys(unset).length > 0 ? { $unset: unset } : {}),
    };
    // Two first attempts at once both try to insert: the one that loses updates the record the other made.
    await this.deployments.updateOne(key, update, { upsert: true }).catch((err: unknown) => {
      if (!(err instanceof MongoServerError && err.code === DUPLICATE_KEY)) throw err;
      return this.deployments.updateOne(key, update);
    });
    if (d.status === 'deployed') {
      await this.deployments.updateOne({ ...key, origin: { $exists: false } }, { $set: { origin: attempt } });
    }
    if (d.run === undefined) await this.attempts.insertOne({ ...key, ...attempt });
    else {
      const same = { ...key, 'run.runId': d.run.runId, status: d.status };
      await this.attempts.replaceOne(same, { ...key, ...attempt }, { upsert: true });
    }
    const older = await this.attempts
      .find(key, { projection: { _id: 1 }, sort: { at: -1 }, skip: MAX_DEPLOYMENT_ATTEMPTS })
      .toArray();
    if (older.length > 0) await this.attempts.deleteMany({ _id: { $in: older.map((o) => o._id) } });
  }

  /**
   * A record written before attempts were kept says only its latest state: that state becomes its first
   * attempt, and, if it deployed, its origin, before a new attempt replaces it.
   */
  private async keepLegacyState(key: { image: string; version: string; sddc: string }): Promise<void> {
    // A record is created with firstAttemptAt in the same write: one without it predates attempts.
    const previous = await this.deployments.findOne(key, { projection: { _id: 0 } });
    if (!previous || previous.firstAttemptAt) return;
    const attempt = attemptOf(previous, previous.deployedAt ?? previous.updatedAt);
    await this.attempts.insertOne({ ...key, ...attempt });
    const origin = previous.status === 'deployed' && !previous.origin ? { origin: attempt } : {};
    await this.deployments.updateOne(
      { ...key, firstAttemptAt: { $exists: false } },
      { $set: { firstAttemptAt: attempt.at, ...origin } },
    );
  }

  private async withAttempts(records: DeploymentRecord[]): Promise<DeploymentRecord[]> {
    if (records.length === 0) return [];
    const { image, version } = records[0];
    const sddcs = records.map((r) => r.sddc);
    const stored = await this.attempts
      .find({ image, version, sddc: { $in: sddcs } }, { projection: { _id: 0 }, sort: { at: 1 } })
      .toArray();
    const bySddc = new Map<string, DeploymentAttempt[]>();
    for (const { image: _image, version: _version, sddc, ...attempt } of stored) {
      bySddc.set(sddc, [...(bySddc.get(sddc) ?? []), attempt]);
    }
    return records.map((r) => ({ ...r, attempts: bySddc.get(r.sddc) ?? [] }));
  }

  /** Where a version is deployed (or was tried), one row per SDDC, each with its attempts, oldest first. */
  async deploymentsOf(image: string, version: string): Promise<DeploymentRecord[]> {
    return this.withAttempts(
      await this.deployments.find({ image, version }, { projection: { _id: 0 }, sort: { sddc: 1 } }).toArray(),
    );
  }

  /** Marks a version deprecated (again, with the new message and date); UnknownImage when it is not in the catalog. */
  async deprecate(image: string, version: string, d: Omit<Deprecation, 'deprecatedAt'>): Promise<ImageVersionRecord> {
    // Absent fields stay absent: the driver would store an undefined one as null.
    const deprecation: Deprecation = {
      deprecatedAt: new Date(),
      ...(d.message !== undefined ? { message: d.message } : {}),
      ...(d.endOfLife !== undefined ? { endOfLife: d.endOfLife } : {}),
    };
    const result = await this.versions.updateOne({ image, version }, { $set: { deprecation, updatedAt: new Date() } });
    if (result.matchedCount === 0) throw new VmhubError('UnknownImage', `${image}@${version} is not in the catalog`);
    return (await this.getVersion(image, version))!;
  }

  async undeprecate(image: string, version: string): Promise<ImageVersionRecord> {
    const result = await this.versions.updateOne(
      { image, version },
      { $unset: { deprecation: '' }, $set: { updatedAt: new Date() } },
    );
    if (result.matchedCount === 0) throw new VmhubError('UnknownImage', `${image}@${version} is not in the catalog`);
    return (await this.getVersion(image, version))!;
  }

  /**
   * Claims a version for a retire by one run: it leaves `latest` and no deploy plans it any more. The
   * run's own claim is taken again (a resumed retire); another run's is reported as `owned`, to be taken
   * over (takeOverRetire) only once that run has closed.
   */
  async beginRetire(image: string, version: string, by: RunRef): Promise<RetireClaim> {
    const before = await this.getVersion(image, version);
    if (before?.status === 'retired') return { state: 'retired' };
    if (before?.status === 'retiring' && before.retired?.by.runId !== by.runId) {
      return { state: 'owned', owner: before.retired?.by };
    }
    if (before?.status !== 'available' && before?.status !== 'retiring') return { state: 'unavailable', status: before?.status };
    const result =
      before.status === 'available'
        ? await this.versions.updateOne(
            { image, version, status: 'available' },
            { $set: { status: 'retiring', retired: { by, from: 'available' }, updatedAt: new Date() } },
          )
        : await this.versions.updateOne(
            { image, version, status: 'retiring', 'retired.by.runId': by.runId },
            { $set: { updatedAt: new Date() } },
          );
    // Another run claimed it between the read and the update: the activity's retry looks again.
    if (result.matchedCount === 0) throw new Error(`${image}@${version} changed while being claimed; retrying`);
    const record = (await this.getVersion(image, version))!;
    return { state: 'claimed', record, previous: record.retired?.from ?? before.status };
  }

  /** Takes over a `retiring` claim from a run known to have closed; false if the claim changed meanwhile. */
  async takeOverRetire(image: string, version: string, by: RunRef, previous: RunRef | undefined): Promise<boolean> {
    const result = await this.versions.updateOne(
      {
        image,
        version,
        status: 'retiring',
        ...(previous ? { 'retired.by.runId': previous.runId } : { 'retired.by': { $exists: false } }),
      },
      { $set: { retired: { by, from: 'retiring' }, updatedAt: new Date() } },
    );
    return result.matchedCount === 1;
  }

  /** Gives the run's `retiring` claim back (a deploy was found running, or the retire was cancelled before removing anything). */
  async abandonRetire(image: string, version: string, by: RunRef): Promise<void> {
    await this.versions.updateOne(
      { image, version, status: 'retiring', 'retired.by.runId': by.runId },
      { $set: { status: 'available', updatedAt: new Date() }, $unset: { retired: '' } },
    );
  }

  /** The tombstone: status `retired`, when and by which run (the claim's holder); its replica records go with the blobs. */
  async finishRetire(image: string, version: string, by: RunRef): Promise<void> {
    const now = new Date();
    await this.versions.updateOne(
      { image, version, status: 'retiring', 'retired.by.runId': by.runId },
      { $set: { status: 'retired', retired: { at: now, by }, updatedAt: now } },
    );
    await this.replicas.deleteMany({ image, version });
  }

  async removeReplica(image: string, version: string, location: string): Promise<void> {
    await this.replicas.deleteOne({ image, version, location });
  }

  /** Versions of an image some SDDC holds (deployed or already present there). */
  async heldVersions(image: string): Promise<Set<string>> {
    const rows = await this.deployments
      // A later attempt that failed or was skipped leaves the copy an earlier one made: its origin says so.
      .find(
        { image, $or: [{ status: { $in: ['deployed', 'already-present'] } }, { origin: { $exists: true } }] },
        { projection: { _id: 0, version: 1 } },
      )
      .toArray();
    return new Set(rows.map((r) => r.version));
  }

  async setRetention(policy: RetentionPolicy): Promise<RetentionPolicy> {
    await this.retention.updateOne({ image: policy.image }, { $set: { ...policy, updatedAt: new Date() } }, { upsert: true });
    return policy;
  }

  async getRetention(image: string): Promise<RetentionPolicy | null> {
    return this.retention.findOne({ image }, { projection: { _id: 0, updatedAt: 0 } });
  }

  listRetention(): Promise<RetentionPolicy[]> {
    return this.retention.find({}, { projection: { _id: 0, updatedAt: 0 }, sort: { image: 1 } }).toArray();
  }

  async clearRetention(image: string): Promise<boolean> {
    return (await this.retention.deleteOne({ image })).deletedCount === 1;
  }
}
