import { MongoClient, MongoServerError, type Collection, type Db, type Filter } from 'mongodb';
import semver from 'semver';
import type { Capacity } from '../topology/topology';
import type { ImageFormat } from '../images/format';
import type { ImageMetadata } from '../images/inspect';
import type { BlobLocation } from '../publish/input';

/** The catalog of SPEC §5 in MongoDB: image versions, SDDCs and deployments. */
export type VersionStatus = 'uploading' | 'available' | 'failed';

export interface ImageVersionRecord {
  image: string;
  version: string;
  status: VersionStatus;
  format: ImageFormat;
  sizeBytes: number;
  sha256?: string;
  location: BlobLocation;
  blockSize: number;
  blockCount: number;
  metadata?: ImageMetadata;
  replicas: ReplicaRecord[];
  error?: string;
  createdAt: Date;
  updatedAt: Date;
  publishedAt?: Date;
}

export type ReplicaStatus = 'pending' | 'verified' | 'stale' | 'failed';

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
  datastore: string;
  capacity: Capacity;
  createdAt: Date;
}

export type DeploymentStatus = 'deploying' | 'deployed' | 'already-present' | 'skipped' | 'failed';

export interface DeploymentRecord {
  image: string;
  version: string;
  sddc: string;
  status: DeploymentStatus;
  source?: string;
  path?: string;
  bytes?: number;
  error?: string;
  startedAt?: Date;
  updatedAt: Date;
  deployedAt?: Date;
}

/** What a version needs, compared with an SDDC's capacity (disk in bytes, memory in MiB). */
export interface Requirements {
  cpus?: number;
  memoryMiB?: number;
  diskBytes?: number;
}

export type ClaimResult = { state: 'claimed' } | { state: 'available'; record: ImageVersionRecord };

export type NewVersion = Pick<
  ImageVersionRecord,
  'image' | 'version' | 'format' | 'sizeBytes' | 'location' | 'blockSize' | 'blockCount'
>;

const DUPLICATE_KEY = 11000;

/** FerretDB leaves out an empty array written at insert; every record read has a replica list. */
function withReplicas(record: ImageVersionRecord): ImageVersionRecord {
  return { ...record, replicas: record.replicas ?? [] };
}

export class Catalog {
  readonly versions: Collection<ImageVersionRecord>;
  readonly sddcs: Collection<SddcRecord>;
  readonly deployments: Collection<DeploymentRecord>;

  constructor(
    readonly db: Db,
    private readonly client?: MongoClient,
  ) {
    this.versions = db.collection<ImageVersionRecord>('image_versions');
    this.sddcs = db.collection<SddcRecord>('sddcs');
    this.deployments = db.collection<DeploymentRecord>('deployments');
  }

  static async connect(uri: string): Promise<Catalog> {
    const client = new MongoClient(uri, { serverSelectionTimeoutMS: 10_000, appName: 'vmhub' });
    await client.connect();
    const catalog = new Catalog(client.db(), client);
    await catalog.ensureIndexes();
    return catalog;
  }

  async ensureIndexes(): Promise<void> {
    await this.versions.createIndex({ image: 1, version: 1 }, { unique: true, name: 'image_version' });
    await this.sddcs.createIndex({ name: 1 }, { unique: true, name: 'sddc_name' });
    await this.deployments.createIndex({ image: 1, version: 1, sddc: 1 }, { unique: true, name: 'image_version_sddc' });
  }

  async close(): Promise<void> {
    await this.client?.close();
  }

  async getVersion(image: string, version: string): Promise<ImageVersionRecord | null> {
    const record = await this.versions.findOne({ image, version }, { projection: { _id: 0 } });
    return record && withReplicas(record);
  }

  /**
   * Records that a publish of image@version has begun, unless that version is already available:
   * then the caller compares digests (same bytes: idempotent; different: VersionConflict).
   */
  async claimVersion(v: NewVersion): Promise<ClaimResult> {
    const now = new Date();
    try {
      await this.versions.updateOne(
        { image: v.image, version: v.version, status: { $ne: 'available' } },
        {
          // New bytes may be coming: copies of earlier ones are no replicas of this version.
          $set: { ...v, status: 'uploading', replicas: [], updatedAt: now },
          $unset: { error: '', sha256: '', metadata: '' },
          $setOnInsert: { createdAt: now },
        },
        { upsert: true },
      );
      return { state: 'claimed' };
    } catch (err) {
      if (!(err instanceof MongoServerError && err.code === DUPLICATE_KEY)) throw err;
    }
    const record = await this.getVersion(v.image, v.version);
    if (record?.status === 'available') return { state: 'available', record };
    throw new Error(`catalog changed under the publish of ${v.image}@${v.version}; retrying`);
  }

  /** uploading → available, with the verified digest and metadata. Repeating it is harmless. */
  async markAvailable(image: string, version: string, sha256: string, metadata: ImageMetadata): Promise<ImageVersionRecord> {
    const now = new Date();
    await this.versions.updateOne(
      { image, version, status: 'uploading' },
      { $set: { status: 'available', sha256, metadata, publishedAt: now, updatedAt: now } },
    );
    const record = await this.getVersion(image, version);
    if (record?.status !== 'available' || record.sha256 !== sha256) {
      throw new Error(`catalog record of ${image}@${version} is ${record?.status ?? 'missing'}, cannot mark it available`);
    }
    return record;
  }

  /** A publish that failed leaves its record `failed`, never touching an available one. */
  async markFailed(image: string, version: string, error: string): Promise<void> {
    await this.versions.updateOne(
      { image, version, status: { $ne: 'available' } },
      { $set: { status: 'failed', error, updatedAt: new Date() } },
    );
  }

  /** Versions of an image (or of every image), newest semantic version first. */
  async listVersions(image?: string, filter: Filter<ImageVersionRecord> = {}): Promise<ImageVersionRecord[]> {
    const records = (
      await this.versions.find({ ...(image ? { image } : {}), ...filter }, { projection: { _id: 0 } }).toArray()
    ).map(withReplicas);
    return records.sort((a, b) => a.image.localeCompare(b.image) || semver.rcompare(a.version, b.version));
  }

  /** The highest available semantic version of an image. */
  async latest(image: string): Promise<ImageVersionRecord | undefined> {
    return (await this.listVersions(image, { status: 'available' }))[0];
  }

  /** Available versions whose resources fit within a capacity. */
  fitting(capacity: Requirements, image?: string): Promise<ImageVersionRecord[]> {
    const filter: Filter<ImageVersionRecord> = { status: 'available', 'metadata.resources': { $exists: true } };
    if (capacity.cpus !== undefined) filter['metadata.resources.cpus'] = { $lte: capacity.cpus };
    if (capacity.memoryMiB !== undefined) filter['metadata.resources.memoryMiB'] = { $lte: capacity.memoryMiB };
    if (capacity.diskBytes !== undefined) filter['metadata.resources.diskBytes'] = { $lte: capacity.diskBytes };
    return this.listVersions(image, filter);
  }

  /** Available versions whose guest OS type (vmw:osType or VirtualBox OSType) is the one given. */
  byOs(osType: string): Promise<ImageVersionRecord[]> {
    return this.listVersions(undefined, { status: 'available', 'metadata.os.osType': osType });
  }

  async setReplica(image: string, version: string, replica: ReplicaRecord): Promise<void> {
    const record = await this.getVersion(image, version);
    if (!record) throw new Error(`no catalog record for ${image}@${version}`);
    const replicas = [...record.replicas.filter((r) => r.location !== replica.location), replica];
    await this.versions.updateOne({ image, version }, { $set: { replicas, updatedAt: new Date() } });
  }

  async addSddc(sddc: Omit<SddcRecord, 'createdAt'>): Promise<SddcRecord> {
    const record = { ...sddc, createdAt: new Date() };
    await this.sddcs.updateOne(
      { name: sddc.name },
      { $set: sddc, $setOnInsert: { createdAt: record.createdAt } },
      { upsert: true },
    );
    return (await this.sddcs.findOne({ name: sddc.name }, { projection: { _id: 0 } }))!;
  }

  listSddcs(): Promise<SddcRecord[]> {
    return this.sddcs.find({}, { projection: { _id: 0 }, sort: { name: 1 } }).toArray();
  }

  async removeSddc(name: string): Promise<boolean> {
    return (await this.sddcs.deleteOne({ name })).deletedCount === 1;
  }

  async recordDeployment(d: Omit<DeploymentRecord, 'updatedAt'>): Promise<void> {
    const now = new Date();
    await this.deployments.updateOne(
      { image: d.image, version: d.version, sddc: d.sddc },
      { $set: { ...d, updatedAt: now, ...(d.status === 'deployed' ? { deployedAt: now } : {}) } },
      { upsert: true },
    );
  }

  /** Where a version is deployed (or was tried), one row per SDDC. */
  deploymentsOf(image: string, version: string): Promise<DeploymentRecord[]> {
    return this.deployments.find({ image, version }, { projection: { _id: 0 }, sort: { sddc: 1 } }).toArray();
  }
}
