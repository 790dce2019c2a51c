import { VmhubError } from './errors';
import { BLOB_EXTENSIONS, IMAGE_FORMATS, type ImageFormat } from './image-format';
import type { ImageMetadata } from '../images/inspect';
import type { DeployCounts, DeployResultRow } from './deploy-input';
import { validateImageName, validateSddcSelection, validateVersion, type SddcSelection } from './names';

/** PublishImage's input, result and progress (a contract: runs started by other tools depend on it). Plain data: the workflow bundle imports this. */
export interface PublishInput {
  source: string;
  image: string;
  version?: string;
  format?: ImageFormat;
  /** The image's expected SHA-256, such as its vendor publishes: other bytes fail and commit nothing. */
  sha256?: string;
  /** SDDCs to deploy to once published: names, or "all" (every registered SDDC). */
  deployTo?: SddcSelection;
  /** With `deployTo`: the deploy's `allOrNothing` (DeployInput). */
  deployAllOrNothing?: boolean;
}

export interface BlobLocation {
  storage: string;
  container: string;
  blob: string;
}

export interface PublishResult {
  image: string;
  version: string;
  format: ImageFormat;
  sizeBytes: number;
  sha256: string;
  blockSize: number;
  blockCount: number;
  location: BlobLocation;
  metadata: ImageMetadata;
  /**
   * What this run sent to storage: the bytes and blocks it staged, and `from`, the earlier version whose
   * blob the new one started as a server-side copy of (only the blocks that differ are sent then).
   */
  sent?: { bytes: number; blocks: number; from?: string };
  /** True when the version was available already with these very bytes: this run published nothing new. */
  alreadyPublished?: boolean;
  /** With `deployTo`: the child deploy, its rows (as DeployResult has them) and its counts by status. */
  deploy?: { workflowId: string; results: DeployResultRow[]; counts?: DeployCounts };
}

export type PublishPhase =
  | 'validating'
  | 'probing'
  | 'staging'
  | 'committing'
  | 'cataloging'
  | 'replicating'
  | 'deploying'
  | 'done'
  | 'failed'
  | 'cancelling'
  | 'cancelled';

export interface PublishProgress {
  phase: PublishPhase;
  bytesTotal: number;
  bytesStaged: number;
  blocksTotal: number;
  blocksStaged: number;
  /** Blocks sent to storage by this publish, and blocks found already staged with identical bytes. */
  blocksUploaded: number;
  blocksReused: number;
  /** Bytes of the blocks sent; absent in runs that began before it was counted. */
  bytesUploaded?: number;
  /** The earlier version the new version's blob started as a copy of: its blocks are reused, not sent. */
  startedFrom?: string;
  startedAt: string;
  /** What a failed or cancelled run removed before it ended. */
  cleanup?: string[];
  /** Once the version is available: what the run did that no cancel undoes (published, replicated where). */
  done?: string[];
  /** What a cancel after the version became available left unfinished (a stale replica), and how to finish it. */
  left?: string[];
  /** The workflow ID of the deploy the run started, once it started it. */
  deploy?: string;
}

/** Checks the shape of a PublishImage input; the source itself is checked against the repository by an activity. */
export function validatePublishInput(input: unknown): PublishInput {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new VmhubError('InvalidInput', 'PublishImage input must be a JSON object with source and image');
  }
  const i = input as Record<string, unknown>;
  if (typeof i.source !== 'string' || i.source.trim() === '') throw new VmhubError('InvalidSource', 'source is required');
  validateImageName(i.image);
  if (i.version !== undefined) validateVersion(i.version);
  if (i.format !== undefined && !IMAGE_FORMATS.includes(i.format as ImageFormat)) {
    throw new VmhubError('InvalidInput', `format ${JSON.stringify(i.format)} must be one of ${IMAGE_FORMATS.join(', ')}`);
  }
  if (i.sha256 !== undefined && (typeof i.sha256 !== 'string' || !/^[0-9a-fA-F]{64}$/.test(i.sha256))) {
    throw new VmhubError('InvalidInput', 'sha256 must be 64 hexadecimal digits');
  }
  if (i.deployTo !== undefined) validateSddcSelection(i.deployTo, 'deployTo', true);
  if (i.deployAllOrNothing !== undefined) {
    if (typeof i.deployAllOrNothing !== 'boolean')
      throw new VmhubError('InvalidInput', 'deployAllOrNothing must be true or false');
    if (i.deployAllOrNothing && i.deployTo === undefined) {
      throw new VmhubError('InvalidInput', 'deployAllOrNothing applies to a deploy: give deployTo with it');
    }
  }
  return i as unknown as PublishInput;
}

export function publishWorkflowId(image: string, version: string): string {
  return `publish:${image}:${version}`;
}

export function blobName(image: string, version: string, format: ImageFormat): string {
  return `${image}/${version}/${image}-${version}.${BLOB_EXTENSIONS[format]}`;
}

/** The image a blob named by `blobName` holds a version of. */
export function imageOfBlob(blob: string): string {
  return blob.slice(0, blob.indexOf('/'));
}
