import type { Collection, Db, Filter } from 'mongodb';
import semver from 'semver';
import { VmhubError } from '../shared/errors';
import type { ImageMetadata } from '../images/inspect';
import type { Deprecation } from '../lifecycle/deprecation';
import { isLatestRef, LATEST_PRE } from '../shared/names';
import { isDuplicateKey } from './duplicate-key';
import type {
  ClaimResult,
  ImageVersionRecord,
  NewVersion,
  ProvenanceNote,
  ReplicaRecord,
  RetireClaim,
  RunRef,
  VersionFilters,
  VersionOverlap,
  VersionStatus,
} from './image-records';
import type { ReplicasRepository } from './replicas-repository';

/** A version as `image_versions` stores it: its replicas are documents of their own (see StoredReplica). */
export type StoredVersion = Omit<ImageVersionRecord, 'replicas'>;

/**
 * The one query behind every image listing. A capacity filter needs the version to declare its resources
 * (an ISO does not, so it never "fits"); each requirement given bounds the matching resource.
 */
function versionQuery(filters: VersionFilters): Filter<StoredVersion> {
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

/**
 * The `image_versions` collection: a version's publish claim, its state and its retire claim. Every record
 * read carries its replicas; a claim's new bytes clear them, and a retire's tombstone removes them.
 */
export class VersionsRepository {
  readonly collection: Collection<StoredVersion>;

  constructor(
    db: Db,
    private readonly replicas: ReplicasRepository,
  ) {
    this.collection = db.collection<StoredVersion>('image_versions');
  }

  async createIndexes(): Promise<void> {
    await this.collection.createIndex({ image: 1, version: 1 }, { unique: true, name: 'image_version' });
  }

  async get(image: string, version: string): Promise<ImageVersionRecord | null> {
    const record = await this.collection.findOne({ image, version }, { projection: { _id: 0 } });
    return record && (await this.withReplicas([record]))[0];
  }

  /** The version's state alone; undefined when it is not in the catalog. */
  async status(image: string, version: string): Promise<VersionStatus | undefined> {
    return (await this.collection.findOne({ image, version }, { projection: { status: 1 } }))?.status;
  }

  /**
   * Claims image@version for one run, unless it is available (the caller then compares digests) or
   * another run holds an `uploading` claim (the caller may take it over once that run has closed). A
   * failed or cancelled version, and the run's own claim, are claimed again.
   */
  async claim(v: NewVersion, owner: RunRef): Promise<ClaimResult> {
    const claimed = await this.collection.updateOne(
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
      await this.collection.insertOne({ ...v, status: 'uploading', owner, createdAt: now, updatedAt: now });
      return this.clearReplicas(v);
    } catch (err) {
      if (!isDuplicateKey(err)) throw err;
    }
    const record = await this.get(v.image, v.version);
    if (record?.status === 'retiring' || record?.status === 'retired') {
      throw new VmhubError('VersionConflict', `${v.image}@${v.version} is ${record.status}; publish it under a new version`);
    }
    if (record?.status === 'available') return { state: 'available', record };
    if (record?.status === 'uploading' && record.owner?.runId !== owner.runId) return { state: 'owned', owner: record.owner };
    throw new Error(`catalog changed under the claim of ${v.image}@${v.version}; retrying`);
  }

  /** Takes over an `uploading` claim from a run known to have closed; false if the claim changed meanwhile. */
  async takeOver(v: NewVersion, owner: RunRef, previous: RunRef | undefined): Promise<boolean> {
    const result = await this.collection.updateOne(
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
    await this.replicas.clear(v.image, v.version);
    return { state: 'claimed' };
  }

  private async withReplicas(records: StoredVersion[]): Promise<ImageVersionRecord[]> {
    if (records.length === 0) return [];
    const replicas = await this.replicas.ofImages([...new Set(records.map((r) => r.image))]);
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
      $unset: { error: '' as const, sha256: '' as const, metadata: '' as const, provenance: '' as const },
    };
  }

  /**
   * uploading → available, with the verified digest and metadata, for the claim's owner only; undefined
   * when the owner holds no claim. Repeating it is harmless: a repeat finds the owner's available record.
   */
  async markAvailable(
    image: string,
    version: string,
    owner: RunRef,
    sha256: string,
    metadata: ImageMetadata,
    provenance?: ProvenanceNote,
    etag?: string,
  ): Promise<ImageVersionRecord | undefined> {
    const now = new Date();
    const result = await this.collection.updateOne(
      { image, version, status: 'uploading', 'owner.runId': owner.runId },
      {
        $set: {
          status: 'available',
          sha256,
          metadata,
          publishedAt: now,
          updatedAt: now,
          ...(provenance ? { provenance } : {}),
          ...(etag ? { etag } : {}),
        },
      },
    );
    const record = await this.get(image, version);
    if (result.matchedCount === 1 && record) return record;
    // Matched nothing: only a repeat of this very mark (its answer lost) finds the owner's available record.
    const ours = record?.status === 'available' && record.sha256 === sha256 && record.owner?.runId === owner.runId;
    return ours ? record : undefined;
  }

  /** Ends the owner's `uploading` claim as failed or cancelled; false when the run holds no such claim. */
  async endClaim(image: string, version: string, owner: RunRef, status: 'failed' | 'cancelled', error: string): Promise<boolean> {
    const result = await this.collection.updateOne(
      { image, version, status: 'uploading', 'owner.runId': owner.runId },
      { $set: { status, error, updatedAt: new Date() } },
    );
    return result.matchedCount === 1;
  }

  /** Every image name with a version in the catalog, in any state. */
  async images(): Promise<string[]> {
    return ((await this.collection.distinct('image')) as string[]).sort();
  }

  /** Versions of an image (or of every image), newest semantic version first. */
  async list(image?: string, filter: Filter<StoredVersion> = {}): Promise<ImageVersionRecord[]> {
    const found = await this.collection.find({ ...(image ? { image } : {}), ...filter }, { projection: { _id: 0 } }).toArray();
    const records = await this.withReplicas(found);
    return records.sort((a, b) => a.image.localeCompare(b.image) || semver.rcompare(a.version, b.version));
  }

  /**
   * The highest available, non-deprecated release version of an image (semantic-version order, so
   * 1.0.0 is above 1.0.0-rc.1); with `includePrerelease`, pre-releases count too.
   */
  async latest(image: string, options: { includePrerelease?: boolean } = {}): Promise<ImageVersionRecord | undefined> {
    const available = await this.list(image, { status: 'available', deprecation: { $exists: false } });
    return available.find((r) => options.includePrerelease || semver.prerelease(r.version) === null);
  }

  /**
   * What a reference names: `latest`, `latest-pre` (pre-releases counted) or an exact version, in any
   * state. Every command and activity that takes `<image>@<version|latest>` resolves it here.
   */
  async resolve(image: string, ref: string): Promise<ImageVersionRecord | undefined> {
    if (isLatestRef(ref)) return this.latest(image, { includePrerelease: ref === LATEST_PRE });
    return (await this.get(image, ref)) ?? undefined;
  }

  /** Versions that pass every filter given (see {@link versionQuery}), by image, newest first. */
  find(filters: VersionFilters): Promise<ImageVersionRecord[]> {
    return this.list(undefined, versionQuery(filters));
  }

  /** Available versions that pass every filter given: what can be deployed. */
  findAvailable(filters: Omit<VersionFilters, 'status'>): Promise<ImageVersionRecord[]> {
    return this.find({ ...filters, status: 'available' });
  }

  /** Notes an available version's overlap; false, and nothing noted, once it is not available. */
  async setOverlap(image: string, version: string, overlap: VersionOverlap): Promise<boolean> {
    const result = await this.collection.updateOne(
      { image, version, status: 'available' },
      { $set: { overlap, updatedAt: new Date() } },
    );
    return result.matchedCount === 1;
  }

  /**
   * Sets one replica's state while the version is available; false, and nothing kept, once it is not. A
   * check or copy that began before a retire claimed the version must not bring back the record the
   * retire removed: the write is checked again after it lands, and undone if the claim came meanwhile
   * (a write before the claim is removed by the retire itself).
   */
  async setReplica(image: string, version: string, replica: ReplicaRecord): Promise<boolean> {
    const before = await this.status(image, version);
    if (before === undefined) throw new Error(`no catalog record for ${image}@${version}`);
    if (before !== 'available') return false;
    await this.replicas.put(image, version, replica);
    if ((await this.status(image, version)) === 'available') return true;
    await this.replicas.remove(image, version, replica.location);
    return false;
  }

  /** Marks a version deprecated (again, with the new message and date); UnknownImage when it is not in the catalog. */
  async deprecate(image: string, version: string, d: Omit<Deprecation, 'deprecatedAt'>): Promise<ImageVersionRecord> {
    // Absent fields stay absent: the driver would store an undefined one as null.
    const deprecation: Deprecation = {
      deprecatedAt: new Date(),
      ...(d.message !== undefined ? { message: d.message } : {}),
      ...(d.endOfLife !== undefined ? { endOfLife: d.endOfLife } : {}),
    };
    const result = await this.collection.updateOne({ image, version }, { $set: { deprecation, updatedAt: new Date() } });
    if (result.matchedCount === 0) throw new VmhubError('UnknownImage', `${image}@${version} is not in the catalog`);
    return (await this.get(image, version))!;
  }

  async undeprecate(image: string, version: string): Promise<ImageVersionRecord> {
    const result = await this.collection.updateOne(
      { image, version },
      { $unset: { deprecation: '' }, $set: { updatedAt: new Date() } },
    );
    if (result.matchedCount === 0) throw new VmhubError('UnknownImage', `${image}@${version} is not in the catalog`);
    return (await this.get(image, version))!;
  }

  /**
   * Claims a version for a retire by one run: it leaves `latest` and no deploy plans it any more. The
   * run's own claim is taken again (a resumed retire); another run's is reported as `owned`, to be taken
   * over (takeOverRetire) only once that run has closed.
   */
  async beginRetire(image: string, version: string, by: RunRef): Promise<RetireClaim> {
    const before = await this.get(image, version);
    if (before?.status === 'retired') return { state: 'retired' };
    if (before?.status === 'retiring' && before.retired?.by.runId !== by.runId) {
      return { state: 'owned', owner: before.retired?.by };
    }
    if (before?.status !== 'available' && before?.status !== 'retiring') return { state: 'unavailable', status: before?.status };
    const result =
      before.status === 'available'
        ? await this.collection.updateOne(
            { image, version, status: 'available' },
            { $set: { status: 'retiring', retired: { by, from: 'available' }, updatedAt: new Date() } },
          )
        : await this.collection.updateOne(
            { image, version, status: 'retiring', 'retired.by.runId': by.runId },
            { $set: { updatedAt: new Date() } },
          );
    // Another run claimed it between the read and the update: the activity's retry looks again.
    if (result.matchedCount === 0) throw new Error(`${image}@${version} changed while being claimed; retrying`);
    const record = (await this.get(image, version))!;
    return { state: 'claimed', record, previous: record.retired?.from ?? before.status };
  }

  /** Takes over a `retiring` claim from a run known to have closed; false if the claim changed meanwhile. */
  async takeOverRetire(image: string, version: string, by: RunRef, previous: RunRef | undefined): Promise<boolean> {
    const result = await this.collection.updateOne(
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

  /**
   * Gives the run's `retiring` claim back (a deploy was found running, or the retire was cancelled before
   * removing anything). Given back already (a retried call) is no error; a claim another run holds, or a
   * tombstone, is a VersionConflict: the caller must not report the version as available.
   */
  async abandonRetire(image: string, version: string, by: RunRef): Promise<void> {
    const result = await this.collection.updateOne(
      { image, version, status: 'retiring', 'retired.by.runId': by.runId },
      { $set: { status: 'available', updatedAt: new Date() }, $unset: { retired: '' } },
    );
    if (result.matchedCount === 1) return;
    const now = await this.get(image, version);
    if (now?.status === 'available' && !now.retired) return;
    throw lostRetire(image, version, by, now);
  }

  /**
   * The tombstone: status `retired`, when and by which run (the claim's holder); its replica records go with
   * the blobs. Left already by this run (a retried call) is no error; anything else is a VersionConflict,
   * so a retire never reports `retired` while the catalog says otherwise.
   */
  async finishRetire(image: string, version: string, by: RunRef): Promise<void> {
    const now = new Date();
    const result = await this.collection.updateOne(
      { image, version, status: 'retiring', 'retired.by.runId': by.runId },
      { $set: { status: 'retired', retired: { at: now, by }, updatedAt: now } },
    );
    if (result.matchedCount === 0) {
      const record = await this.get(image, version);
      if (record?.status !== 'retired' || record.retired?.by.runId !== by.runId) throw lostRetire(image, version, by, record);
    }
    await this.replicas.clear(image, version);
  }
}

function lostRetire(image: string, version: string, by: RunRef, record: ImageVersionRecord | null): VmhubError {
  const holder = record?.retired?.by
    ? `, claimed by workflow ${record.retired.by.workflowId} run ${record.retired.by.runId}`
    : '';
  return new VmhubError(
    'VersionConflict',
    `workflow ${by.workflowId} run ${by.runId} no longer holds the retire claim on ${image}@${version}: it is ${record?.status ?? 'not in the catalog'}${holder}`,
  );
}
