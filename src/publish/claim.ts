import type { Catalog } from '../catalog/catalog';
import type { ImageVersionRecord, RunRef } from '../catalog/image-records';
import type { Log } from '../engine/liveness';
import { VmhubError } from '../shared/errors';
import type { ImageFormat } from '../shared/image-format';
import type { SignOutput } from './sign';
import type { ImageMetadata } from '../images/inspect';
import type { BlockStores } from '../storage/block-store';
import { unlessNotFound } from '../storage/block-store';
import type { BlockPlan } from '../shared/block-plan';
import type { TemporalView } from '../temporal/connection';
import { envelopeBlobOf } from '../provenance/stored';
import { primaryLocation } from '../topology/topology';
import { blobName, type BlobLocation, type PublishResult } from '../shared/publish-input';

/**
 * A publish run's claim on image@version: taken (or taken over from a closed run), checked before the
 * commit, turned into an available version, or abandoned with whatever the run wrote.
 */
export interface ClaimDeps {
  storage: BlockStores;
  catalog: Pick<Catalog, 'versions'>;
  temporal: Pick<TemporalView, 'isClosed'>;
}

export interface ClaimInput {
  image: string;
  version: string;
  format: ImageFormat;
  plan: BlockPlan;
}

export type ClaimOutput = { state: 'claimed'; location: BlobLocation } | { state: 'available'; existing: PublishResult };

/** What abandoning a publish removed, for the operator. */
export interface AbandonOutput {
  /** False when this run held no claim: another run's version and blob were left alone. */
  owned: boolean;
  removed: string[];
}

function resultFromRecord(r: ImageVersionRecord): PublishResult {
  return {
    image: r.image,
    version: r.version,
    format: r.format,
    sizeBytes: r.sizeBytes,
    sha256: r.sha256 ?? '',
    blockSize: r.blockSize,
    blockCount: r.blockCount,
    location: r.location,
    metadata: r.metadata!,
  };
}

export function lostClaim(image: string, version: string): VmhubError {
  return new VmhubError('VersionConflict', `this run no longer owns ${image}@${version}: another run took it over`);
}

/**
 * Claims image@version for `me`, or reports the version that is already available. A claim held by
 * another run that is still open is a VersionConflict naming it; one left by a closed run is taken over.
 */
export async function claimVersion(deps: ClaimDeps, input: ClaimInput, me: RunRef, log: Log): Promise<ClaimOutput> {
  const { storage, catalog, temporal } = deps;
  const primary = primaryLocation(storage.topology);
  const location: BlobLocation = {
    storage: primary.id,
    container: primary.container,
    blob: blobName(input.image, input.version, input.format),
  };
  await storage.store(primary.id).createContainer();
  const version = {
    image: input.image,
    version: input.version,
    format: input.format,
    sizeBytes: input.plan.sizeBytes,
    blockSize: input.plan.blockSize,
    blockCount: input.plan.blockCount,
    location,
  };
  const claim = await catalog.versions.claim(version, me);
  // The workflow returns it as its result once the source is found to hold the same bytes.
  if (claim.state === 'available') {
    return { state: 'available', existing: { ...resultFromRecord(claim.record), alreadyPublished: true } };
  }
  if (claim.state === 'claimed') return { state: 'claimed', location };
  if (claim.owner && !(await temporal.isClosed(claim.owner))) {
    throw new VmhubError(
      'VersionConflict',
      `${input.image}@${input.version} is being published by workflow ${claim.owner.workflowId}; wait for it or cancel it`,
    );
  }
  log.info('taking over a claim left by a closed run', { image: input.image, version: input.version, previous: claim.owner });
  if (!(await catalog.versions.takeOver(version, me, claim.owner))) {
    throw new Error(`the claim on ${input.image}@${input.version} changed while being taken over; retrying`);
  }
  return { state: 'claimed', location };
}

/** Whether `me` still owns the version's claim: a run that lost it must not commit nor clean up. */
export async function ownsClaim(
  catalog: Pick<Catalog, 'versions'>,
  image: string,
  version: string,
  me: RunRef,
): Promise<boolean> {
  const record = await catalog.versions.get(image, version);
  return record?.status === 'uploading' && record.owner?.runId === me.runId;
}

/** uploading → available, for the run that owns the claim. */
/** What makes a version available: its SHA-256 and metadata, its signature, and the etag of its committed blob. */
export interface AvailableInput {
  image: string;
  version: string;
  sha256: string;
  metadata: ImageMetadata;
  /** signProvenance's note, recorded in the same write. */
  provenance?: SignOutput;
  /** The committed blob's, which a later version's copy of it is bound to. */
  etag?: string;
}

export async function markAvailable(
  catalog: Pick<Catalog, 'versions'>,
  input: AvailableInput,
  me: RunRef,
): Promise<PublishResult> {
  const p = input.provenance;
  const provenance = p && { ...p, signedAt: new Date(p.signedAt) };
  const { image, version, sha256, metadata, etag } = input;
  const record = await catalog.versions.markAvailable(image, version, me, sha256, metadata, provenance, etag);
  if (!record) throw lostClaim(input.image, input.version);
  return resultFromRecord(record);
}

/**
 * After a failed or cancelled publish, once its staging has stopped: no committed blob, no staged
 * blocks and no available version remain. Writing the blob is what discards uncommitted blocks on
 * Azure, hence the empty upload before the delete. Only the run that owns the claim touches anything.
 */
export async function abandonClaim(
  deps: Pick<ClaimDeps, 'storage' | 'catalog'>,
  input: { image: string; version: string; location: BlobLocation; status: 'failed' | 'cancelled'; error: string },
  me: RunRef,
): Promise<AbandonOutput> {
  const record = await deps.catalog.versions.get(input.image, input.version);
  if (record?.owner?.runId === me.runId && record.status === input.status) {
    // A repeat of this abandon (its answer lost): the blob went before the record was marked.
    return { owned: true, removed: [`catalog record marked ${input.status}`] };
  }
  if (record?.status !== 'uploading' || record.owner?.runId !== me.runId) return { owned: false, removed: [] };
  const store = deps.storage.store(input.location.storage);
  const blob = input.location.blob;
  const removed: string[] = [];
  const props = await unlessNotFound(store.getProperties(blob));
  const list = await unlessNotFound(store.uncommittedBlocks(blob));
  const staged = list?.length ?? 0;
  // A signature of bytes that are not kept goes with them (it was written after the commit).
  if (await unlessNotFound(store.deleteIfExists(envelopeBlobOf(blob)))) removed.push(`signed provenance ${envelopeBlobOf(blob)}`);
  if (props || staged > 0) {
    await store.upload(blob, '');
    await store.deleteIfExists(blob);
    if (props) removed.push(`committed blob ${input.location.storage}/${input.location.blob}`);
    if (staged > 0) removed.push(`${staged} staged blocks`);
  }
  if (!(await deps.catalog.versions.endClaim(input.image, input.version, me, input.status, input.error))) {
    throw lostClaim(input.image, input.version);
  }
  removed.push(`catalog record marked ${input.status}`);
  return { owned: true, removed };
}
