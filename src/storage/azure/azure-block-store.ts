import { setTimeout as sleep } from 'node:timers/promises';
import { RestError, type BlockBlobClient, type ContainerClient } from '@azure/storage-blob';
import type { StorageLocation } from '../../topology/topology';
import {
  BlockStoreError,
  type BlobProperties,
  type Block,
  type BlockStore,
  type BlockStoreErrorKind,
  type CommitOptions,
  type CopyOptions,
  type StoreOptions,
  type WriteOptions,
} from '../block-store';
import { blobServiceClient } from './clients';
import { commitTypedBlockList } from './typed-block-list';

/** How often a server-side copy still pending is asked how far it got. */
const COPY_POLL_MS = 2_000;

const KIND_OF_CODE = new Map<string, BlockStoreErrorKind>([
  ['BlobNotFound', 'not-found'],
  ['ContainerNotFound', 'not-found'],
  ['BlobAlreadyExists', 'conflict'],
  ['ConditionNotMet', 'precondition-failed'],
  ['InvalidBlockList', 'invalid-block-list'],
]);
const KIND_OF_STATUS = new Map<number, BlockStoreErrorKind>([
  [404, 'not-found'],
  [409, 'conflict'],
  [412, 'precondition-failed'],
]);

/** The typed outcome of a RestError callers act on; any other error as it is. */
function typed(err: unknown): unknown {
  if (!(err instanceof RestError)) return err;
  const kind = KIND_OF_CODE.get(err.code ?? '') ?? KIND_OF_STATUS.get(err.statusCode ?? 0);
  if (!kind) return err;
  return new BlockStoreError(kind, err.message || `${err.code ?? kind} (${err.statusCode})`, { cause: err });
}

async function call<T>(request: Promise<T>): Promise<T> {
  try {
    return await request;
  } catch (err) {
    throw typed(err);
  }
}

/** One container of an Azure storage account (or Azurite). */
export class AzureBlockStore implements BlockStore {
  constructor(private readonly container: ContainerClient) {}

  private blob(name: string): BlockBlobClient {
    return this.container.getBlockBlobClient(name);
  }

  async createContainer({ abortSignal }: StoreOptions = {}): Promise<void> {
    await call(this.container.createIfNotExists({ abortSignal }));
  }

  async stageBlock(blob: string, id: string, bytes: Buffer, { abortSignal }: StoreOptions = {}): Promise<void> {
    await call(this.blob(blob).stageBlock(id, bytes, bytes.length, { abortSignal }));
  }

  async uncommittedBlocks(blob: string, { abortSignal }: StoreOptions = {}): Promise<Block[]> {
    return (await call(this.blob(blob).getBlockList('uncommitted', { abortSignal }))).uncommittedBlocks ?? [];
  }

  async committedBlocks(blob: string, { abortSignal }: StoreOptions = {}): Promise<Block[]> {
    return (await call(this.blob(blob).getBlockList('committed', { abortSignal }))).committedBlocks ?? [];
  }

  async commitBlocks(blob: string, ids: string[], options: CommitOptions = {}): Promise<{ etag: string }> {
    const { abortSignal, conditions, contentType, metadata, keepCommitted } = options;
    if (keepCommitted) return call(commitTypedBlockList(this.blob(blob), ids, keepCommitted, options));
    const response = await call(
      this.blob(blob).commitBlockList(ids, {
        abortSignal,
        conditions,
        metadata,
        blobHTTPHeaders: { blobContentType: contentType },
      }),
    );
    return { etag: response.etag! };
  }

  async getProperties(blob: string, { abortSignal }: StoreOptions = {}): Promise<BlobProperties> {
    const props = await call(this.blob(blob).getProperties({ abortSignal }));
    return {
      etag: props.etag!,
      contentLength: props.contentLength ?? 0,
      contentType: props.contentType,
      metadata: props.metadata ?? {},
    };
  }

  async readInto(blob: string, into: Buffer, offset: number, { abortSignal }: StoreOptions = {}): Promise<Buffer> {
    // One request: the SDK would otherwise split the read into 4 MiB requests.
    return call(this.blob(blob).downloadToBuffer(into, offset, into.length, { abortSignal, blockSize: into.length }));
  }

  async readStream(
    blob: string,
    offset: number,
    count?: number,
    { abortSignal }: StoreOptions = {},
  ): Promise<AsyncIterable<Buffer>> {
    // The SDK retries a broken response from where it broke off.
    const response = await call(this.blob(blob).download(offset, count, { abortSignal, maxRetryRequests: 5 }));
    return response.readableStreamBody as AsyncIterable<Buffer>;
  }

  async upload(blob: string, body: Buffer | string, options: WriteOptions = {}): Promise<{ etag: string }> {
    const { abortSignal, contentType, metadata } = options;
    const response = await call(
      this.blob(blob).upload(body, Buffer.byteLength(body), {
        abortSignal,
        metadata,
        blobHTTPHeaders: contentType === undefined ? undefined : { blobContentType: contentType },
      }),
    );
    return { etag: response.etag! };
  }

  async copyWithin(blob: string, from: string, options: CopyOptions = {}): Promise<{ etag: string }> {
    const { abortSignal, metadata, sourceEtag } = options;
    // Copy Blob within an account is authorised by this request's own credential, and keeps the block list.
    const poller = await call(
      this.blob(blob).beginCopyFromURL(this.blob(from).url, {
        abortSignal,
        metadata,
        conditions: { ifNoneMatch: '*' },
        sourceConditions: sourceEtag === undefined ? undefined : { ifMatch: sourceEtag },
      }),
    );
    // Polled here rather than by pollUntilDone, whose status reads and waits between them ignore the signal.
    while (!poller.isDone()) {
      await sleep(COPY_POLL_MS, undefined, { signal: abortSignal });
      await call(poller.poll({ abortSignal }));
    }
    const done = poller.getResult();
    if (done?.copyStatus !== 'success') {
      // A copy that failed or was aborted leaves a blob that is no copy: it goes, and the source counts as gone.
      await this.deleteIfExists(blob).catch(() => undefined);
      throw new BlockStoreError('not-found', `the copy of ${from} to ${blob} ended ${done?.copyStatus ?? 'without a status'}`);
    }
    return { etag: done.etag! };
  }

  async deleteIfExists(blob: string, { abortSignal }: StoreOptions = {}): Promise<boolean> {
    return (await call(this.blob(blob).deleteIfExists({ deleteSnapshots: 'include', abortSignal }))).succeeded;
  }
}

/** The store of one storage location: its container, with the credentials its variables name. */
export function openAzureStore(location: StorageLocation, env: NodeJS.ProcessEnv): BlockStore {
  return new AzureBlockStore(blobServiceClient(location, env).getContainerClient(location.container));
}
