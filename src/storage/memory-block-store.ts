import type { BlobProperties, Block, BlockStore, CommitOptions, CopyOptions, StoreOptions, WriteOptions } from './block-store';
import { BlockStoreError } from './block-store';

interface Committed {
  content: Buffer;
  /** Empty for a blob written whole, as the service reports it. */
  blocks: Array<{ name: string; bytes: Buffer }>;
  etag: string;
  contentType: string;
  metadata: Record<string, string>;
}

interface Entry {
  committed?: Committed;
  staged: Map<string, Buffer>;
}

const blockOf = ({ name, bytes }: { name: string; bytes: Buffer }): Block => ({ name, size: bytes.length });

/** A container held in memory, with the semantics of Azure block blobs that vmhub relies on. */
export class MemoryBlockStore implements BlockStore {
  private exists = false;
  private readonly blobs = new Map<string, Entry>();
  private writes = 0;

  async createContainer(options: StoreOptions = {}): Promise<void> {
    options.abortSignal?.throwIfAborted();
    this.exists = true;
  }

  async stageBlock(blob: string, id: string, bytes: Buffer, options: StoreOptions = {}): Promise<void> {
    const entry = this.created(blob, options);
    // The caller may reuse its buffer once the call returns.
    entry.staged.set(id, Buffer.from(bytes));
  }

  async uncommittedBlocks(blob: string, options: StoreOptions = {}): Promise<Block[]> {
    return [...this.found(blob, options).staged].map(([name, bytes]) => blockOf({ name, bytes }));
  }

  async committedBlocks(blob: string, options: StoreOptions = {}): Promise<Block[]> {
    return (this.found(blob, options).committed?.blocks ?? []).map(blockOf);
  }

  async commitBlocks(blob: string, ids: string[], options: CommitOptions = {}): Promise<{ etag: string }> {
    const entry = this.entry(blob, options);
    this.checkConditions(blob, entry?.committed, options.conditions);
    const keep = options.keepCommitted;
    const blocks = ids.map((name) => {
      const committed = () => entry?.committed?.blocks.find((b) => b.name === name)?.bytes;
      const bytes = !keep ? (entry?.staged.get(name) ?? committed()) : keep.has(name) ? committed() : entry?.staged.get(name);
      if (!bytes) throw new BlockStoreError('invalid-block-list', `block ${name} of ${blob} is neither staged nor committed`);
      return { name, bytes };
    });
    return this.write(this.created(blob, options), Buffer.concat(blocks.map((b) => b.bytes)), blocks, options);
  }

  async copyWithin(blob: string, from: string, options: CopyOptions = {}): Promise<{ etag: string }> {
    const source = this.committed(from, options);
    if (options.sourceEtag !== undefined && source.etag !== options.sourceEtag) {
      throw new BlockStoreError('precondition-failed', `${from} does not have etag ${options.sourceEtag}`);
    }
    const target = this.created(blob, options);
    this.checkConditions(blob, target.committed, { ifNoneMatch: '*' });
    const staged = new Map(target.staged);
    const written = this.write(target, source.content, source.blocks, { contentType: source.contentType, ...options });
    // As Azurite does: a copy keeps the blocks the destination had staged.
    for (const [name, bytes] of staged) target.staged.set(name, bytes);
    return written;
  }

  async getProperties(blob: string, options: StoreOptions = {}): Promise<BlobProperties> {
    const { etag, content, contentType, metadata } = this.committed(blob, options);
    return { etag, contentLength: content.length, contentType, metadata: { ...metadata } };
  }

  async readInto(blob: string, into: Buffer, offset: number, options: StoreOptions = {}): Promise<Buffer> {
    const { content } = this.committed(blob, options);
    if (offset + into.length > content.length) throw new RangeError(`${blob} holds no bytes ${offset}+${into.length}`);
    content.copy(into, 0, offset, offset + into.length);
    return into;
  }

  async readStream(blob: string, offset: number, count?: number, options: StoreOptions = {}): Promise<AsyncIterable<Buffer>> {
    const { content } = this.committed(blob, options);
    const end = count === undefined ? content.length : offset + count;
    if (offset > content.length || end > content.length) throw new RangeError(`${blob} holds no bytes ${offset} to ${end}`);
    const bytes = Buffer.from(content.subarray(offset, end));
    return (async function* () {
      if (bytes.length > 0) yield bytes;
    })();
  }

  async upload(blob: string, body: Buffer | string, options: WriteOptions = {}): Promise<{ etag: string }> {
    return this.write(this.created(blob, options), Buffer.from(body), [], options);
  }

  async deleteIfExists(blob: string, options: StoreOptions = {}): Promise<boolean> {
    if (!this.entry(blob, options)?.committed) return false;
    this.blobs.delete(blob);
    return true;
  }

  /** The blob's committed and staged blocks, if it has any; every call fails without the container. */
  private entry(blob: string, { abortSignal }: StoreOptions): Entry | undefined {
    abortSignal?.throwIfAborted();
    if (!this.exists) throw new BlockStoreError('not-found', 'the container does not exist');
    return this.blobs.get(blob);
  }

  private found(blob: string, options: StoreOptions): Entry {
    const entry = this.entry(blob, options);
    if (!entry) throw new BlockStoreError('not-found', `no blob ${blob}`);
    return entry;
  }

  private created(blob: string, options: StoreOptions): Entry {
    let entry = this.entry(blob, options);
    if (!entry) {
      entry = { staged: new Map() };
      this.blobs.set(blob, entry);
    }
    return entry;
  }

  private committed(blob: string, options: StoreOptions): Committed {
    const { committed } = this.found(blob, options);
    if (!committed) throw new BlockStoreError('not-found', `no blob ${blob}`);
    return committed;
  }

  private checkConditions(blob: string, committed: Committed | undefined, conditions: CommitOptions['conditions'] = {}): void {
    if (conditions.ifNoneMatch === '*' && committed) throw new BlockStoreError('conflict', `${blob} exists`);
    if (conditions.ifMatch !== undefined && committed?.etag !== conditions.ifMatch) {
      throw new BlockStoreError('precondition-failed', `${blob} does not have etag ${conditions.ifMatch}`);
    }
  }

  /** Makes `content` the blob's, discarding its staged blocks. */
  private write(entry: Entry, content: Buffer, blocks: Committed['blocks'], options: WriteOptions): { etag: string } {
    const etag = `"0x${(++this.writes).toString(16).toUpperCase()}"`;
    entry.committed = {
      content,
      blocks,
      etag,
      contentType: options.contentType ?? 'application/octet-stream',
      metadata: { ...options.metadata },
    };
    entry.staged.clear();
    return { etag };
  }
}
