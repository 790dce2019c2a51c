import type { Envelope } from '../provenance/dsse';
import type { ImageFormat } from '../shared/image-format';
import type { VersionRef } from '../shared/image-version';
import type { ImageMetadata } from '../images/inspect';
import type { Deprecation } from '../lifecycle/deprecation';
import type { BlobLocation } from '../shared/publish-input';
import type { Requirements } from '../shared/units';

/** Image versions and their replicas as the catalog keeps them (docs/architecture.md). Plain data: no driver. */
export type VersionStatus = 'uploading' | 'available' | 'failed' | 'cancelled' | 'retiring' | 'retired';

/** The workflow run that holds an `uploading` claim: only it may commit, mark available or abandon. */
export interface RunRef {
  workflowId: string;
  runId: string;
}

export interface ImageVersionRecord extends VersionRef {
  status: VersionStatus;
  owner?: RunRef;
  format: ImageFormat;
  sizeBytes: number;
  sha256?: string;
  location: BlobLocation;
  /**
   * The blob's etag when its publish committed it: a later version starts as a copy of this blob only while
   * the blob is still that commit (any new commit or write changes the etag), so a copy is of bytes vmhub sent.
   */
  etag?: string;
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
  /** Who signed the version's provenance, and when: a note for operators; agents read the envelope from storage. */
  provenance?: ProvenanceNote;
}

export interface ProvenanceNote {
  keyid: string;
  signedAt: Date;
  /** The envelope's blob, beside the image's in every location that holds it. */
  envelopeBlob: string;
  /** The envelope itself, when small: the CLI verifies it without reading storage. */
  envelope?: Envelope;
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
  /** When its bytes were last read and hashed to the version's SHA-256 (at `etag`); VerifyReplicas hashes the oldest first. */
  hashedAt?: Date;
  reason?: string;
  /**
   * What the replication that verified it read from the primary and sent here (the egress between data
   * centers), and the earlier version its blob started from, copied within this location.
   */
  crossed?: { bytes: number; from?: string };
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

export type ClaimResult =
  { state: 'claimed' } | { state: 'available'; record: ImageVersionRecord } | { state: 'owned'; owner: RunRef | undefined };

/** What claiming a version for a retire found; `owned`: another run holds the `retiring` claim. */
export type RetireClaim =
  | { state: 'claimed'; record: ImageVersionRecord; previous: 'available' | 'retiring' }
  | { state: 'owned'; owner: RunRef | undefined }
  | { state: 'retired' }
  | { state: 'unavailable'; status: VersionStatus | undefined };

export type NewVersion = Pick<
  ImageVersionRecord,
  'image' | 'version' | 'format' | 'sizeBytes' | 'location' | 'blockSize' | 'blockCount'
>;
