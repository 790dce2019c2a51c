import { MongoClient, MongoServerError, type Collection, type Db } from 'mongodb';
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

export type ClaimResult = { state: 'claimed' } | { state: 'available'; record: ImageVersionRecord };

export type NewVersion = Pick<
  ImageVersionRecord,
  'image' | 'version' | 'format' | 'sizeBytes' | 'location' | 'blockSize' | 'blockCount'
>;

const DUPLICATE_KEY = 11000;

export class Catalog {
  readonly versions: Collection<ImageVersionRecord>;

  constructor(
    readonly db: Db,
    private readonly client?: MongoClient,
  ) {
    this.versions = db.collection<ImageVersionRecord>('image_versions');
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
  }

  async close(): Promise<void> {
    await this.client?.close();
  }

  getVersion(image: string, version: string): Promise<ImageVersionRecord | null> {
    return this.versions.findOne({ image, version }, { projection: { _id: 0 } });
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
          $set: { ...v, status: 'uploading', updatedAt: now },
          $unset: { error: '', sha256: '', metadata: '' },
          $setOnInsert: { replicas: [], createdAt: now },
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
}
