import type { Topology } from '../topology/topology';

/**
 * What vmhub needs of an object store that holds images as block blobs: blocks are staged under IDs,
 * then a commit makes a list of them the blob's content. One store is one container of one location.
 */
export interface BlockStore {
  /** Creates the container; harmless when it exists. */
  createContainer(options?: StoreOptions): Promise<void>;
  /** Stages `bytes` as block `id` of the blob, to be committed later. */
  stageBlock(blob: string, id: string, bytes: Buffer, options?: StoreOptions): Promise<void>;
  /** Blocks staged and not yet committed. */
  uncommittedBlocks(blob: string, options?: StoreOptions): Promise<Block[]>;
  /** The blob's content as a list of blocks, in order. */
  committedBlocks(blob: string, options?: StoreOptions): Promise<Block[]>;
  /** Makes the staged (or committed) blocks `ids` the blob's content; other staged blocks are discarded. */
  commitBlocks(blob: string, ids: string[], options?: CommitOptions): Promise<{ etag: string }>;
  getProperties(blob: string, options?: StoreOptions): Promise<BlobProperties>;
  /** Fills `into` with the blob's bytes from `offset`, in one request. */
  readInto(blob: string, into: Buffer, offset: number, options?: StoreOptions): Promise<Buffer>;
  /** The blob's `count` bytes at `offset` (to its end without `count`); a response that breaks off resumes. */
  readStream(blob: string, offset: number, count?: number, options?: StoreOptions): Promise<AsyncIterable<Buffer>>;
  /** Writes the whole blob at once, discarding its staged blocks. */
  upload(blob: string, body: Buffer | string, options?: WriteOptions): Promise<{ etag: string }>;
  /**
   * Copies the committed blob `from` of this container to `blob` on the server, keeping its committed block
   * list, so a later commit can name those blocks beside newly staged ones; `blob` must not be committed yet.
   * not-found when `from` is not committed (or went while the copy ran); precondition-failed when it is no
   * longer at `sourceEtag`.
   */
  copyWithin(blob: string, from: string, options?: CopyOptions): Promise<{ etag: string }>;
  /** Deletes the committed blob, its snapshots and staged blocks; false when none is committed (staged blocks stay). */
  deleteIfExists(blob: string, options?: StoreOptions): Promise<boolean>;
}

/** A store per storage location of the topology. */
export interface BlockStores {
  readonly topology: Topology;
  /** Throws for a location the topology does not name. */
  store(locationId: string): BlockStore;
  /** Creates every location's container; harmless when they exist. */
  ensureContainers(): Promise<void>;
}

export interface StoreOptions {
  abortSignal?: AbortSignal;
}

export interface WriteOptions extends StoreOptions {
  contentType?: string;
  metadata?: Record<string, string>;
}

export interface CopyOptions extends WriteOptions {
  /** The source must still have this etag: the copy is of that very content. */
  sourceEtag?: string;
}

export interface CommitOptions extends WriteOptions {
  /** `ifMatch`: the blob still has this etag; `ifNoneMatch: '*'`: there is no committed blob. */
  conditions?: { ifMatch?: string; ifNoneMatch?: '*' };
  /**
   * IDs taken from the blob's committed blocks only, never from a block staged under the same ID since;
   * the others are taken from the staged blocks only. Without it, each ID is the block staged under it
   * if any, else the committed one.
   */
  keepCommitted?: ReadonlySet<string>;
}

export interface Block {
  name: string;
  size: number;
}

export interface BlobProperties {
  etag: string;
  contentLength: number;
  contentType?: string;
  metadata: Record<string, string>;
}

/**
 * The outcomes callers act on: no such blob or container; the blob exists where it must not; a
 * condition (etag) failed; a commit named a block that is neither staged nor committed. Any other
 * failure is thrown as the store raised it.
 */
export type BlockStoreErrorKind = 'not-found' | 'conflict' | 'precondition-failed' | 'invalid-block-list';

export class BlockStoreError extends Error {
  override name = 'BlockStoreError';
  constructor(
    readonly kind: BlockStoreErrorKind,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export function isBlockStoreError(err: unknown, ...kinds: BlockStoreErrorKind[]): err is BlockStoreError {
  return err instanceof BlockStoreError && kinds.includes(err.kind);
}

/** What `read` gives, or undefined when the blob (or its container) is not there. */
export async function unlessNotFound<T>(read: Promise<T>): Promise<T | undefined> {
  try {
    return await read;
  } catch (err) {
    if (isBlockStoreError(err, 'not-found')) return undefined;
    throw err;
  }
}
