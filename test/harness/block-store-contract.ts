import { randomUUID } from 'node:crypto';
import { BlockStoreError, unlessNotFound, type BlockStore, type BlockStoreErrorKind } from '../../src/storage/block-store';

const id = (n: number) => Buffer.from(`block-${String(n).padStart(4, '0')}`).toString('base64');
const bytes = (size: number, fill: number) => Buffer.alloc(size, fill);

async function kindOf(call: Promise<unknown>): Promise<BlockStoreErrorKind | 'none'> {
  try {
    await call;
    return 'none';
  } catch (err) {
    if (err instanceof BlockStoreError) return err.kind;
    throw err;
  }
}

async function readAll(stream: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/**
 * The block store contract, run against the in-memory store (test/unit) and against Azurite
 * (test/azure-block-store.test.ts): what is staged and committed, what a commit replaces, etags and
 * conditions, and the typed outcomes of a missing blob or container.
 */
export function describeBlockStoreContract(name: string, make: () => BlockStore): void {
  describe(`block store contract: ${name}`, () => {
    let store: BlockStore;
    let blob: string;
    beforeAll(async () => {
      store = make();
      await store.createContainer();
    });
    beforeEach(() => {
      blob = `contract/${randomUUID()}.bin`;
    });

    it('a missing container is not found until created, and creating it twice is harmless', async () => {
      const fresh = make();
      expect(await kindOf(fresh.getProperties(blob))).toBe('not-found');
      expect(await kindOf(fresh.stageBlock(blob, id(0), bytes(4, 1)))).toBe('not-found');
      expect(await kindOf(fresh.deleteIfExists(blob))).toBe('not-found');
      await fresh.createContainer();
      await fresh.createContainer();
      expect(await kindOf(fresh.getProperties(blob))).toBe('not-found');
    });

    it('a blob that does not exist is not found, and deleting it reports nothing deleted', async () => {
      expect(await kindOf(store.uncommittedBlocks(blob))).toBe('not-found');
      expect(await kindOf(store.committedBlocks(blob))).toBe('not-found');
      expect(await kindOf(store.readStream(blob, 0, 1))).toBe('not-found');
      expect(await kindOf(store.readInto(blob, Buffer.alloc(1), 0))).toBe('not-found');
      expect(await unlessNotFound(store.getProperties(blob))).toBeUndefined();
      expect(await store.deleteIfExists(blob)).toBe(false);
      expect(await kindOf(store.commitBlocks(blob, [], { conditions: { ifMatch: '"0x1234"' } }))).toBe('precondition-failed');
      expect(await kindOf(store.uncommittedBlocks(blob))).toBe('not-found');
    });

    it('staged blocks are uncommitted until a commit makes them the content, in the order given', async () => {
      const source = bytes(8, 2);
      await store.stageBlock(blob, id(1), bytes(3, 7));
      await store.stageBlock(blob, id(0), source.subarray(0, 5));
      source.fill(9); // the store holds what was staged, not the caller's buffer
      expect((await store.uncommittedBlocks(blob)).sort((a, b) => a.name.localeCompare(b.name))).toEqual([
        { name: id(0), size: 5 },
        { name: id(1), size: 3 },
      ]);
      expect(await store.committedBlocks(blob)).toEqual([]);
      expect(await kindOf(store.getProperties(blob))).toBe('not-found');

      const { etag } = await store.commitBlocks(blob, [id(0), id(1)], {
        conditions: { ifNoneMatch: '*' },
        contentType: 'application/x-test',
        metadata: { sha256: 'abc' },
      });
      expect(await store.committedBlocks(blob)).toEqual([
        { name: id(0), size: 5 },
        { name: id(1), size: 3 },
      ]);
      expect(await store.uncommittedBlocks(blob)).toEqual([]);
      expect(await store.getProperties(blob)).toMatchObject({
        etag,
        contentLength: 8,
        contentType: 'application/x-test',
        metadata: { sha256: 'abc' },
      });
      expect(await readAll(await store.readStream(blob, 0))).toEqual(Buffer.concat([bytes(5, 2), bytes(3, 7)]));
      expect(await readAll(await store.readStream(blob, 4, 2))).toEqual(Buffer.from([2, 7]));
      expect(await store.readInto(blob, Buffer.alloc(3), 5)).toEqual(bytes(3, 7));
    });

    it('a commit replaces the committed list, drops staged blocks it leaves out, and changes the etag', async () => {
      await store.stageBlock(blob, id(0), bytes(2, 1));
      await store.stageBlock(blob, id(1), bytes(2, 2));
      const first = await store.commitBlocks(blob, [id(0), id(1)]);
      await store.stageBlock(blob, id(2), bytes(2, 3));
      await store.stageBlock(blob, id(3), bytes(2, 4));
      expect((await store.uncommittedBlocks(blob)).map((b) => b.name).sort()).toEqual([id(2), id(3)]);
      // Committed blocks can be named again beside staged ones.
      const second = await store.commitBlocks(blob, [id(1), id(2)], { conditions: { ifMatch: first.etag } });
      expect(second.etag).not.toBe(first.etag);
      expect((await store.committedBlocks(blob)).map((b) => b.name)).toEqual([id(1), id(2)]);
      expect(await store.uncommittedBlocks(blob)).toEqual([]);
      expect(await readAll(await store.readStream(blob, 0))).toEqual(Buffer.from([2, 2, 3, 3]));
      expect((await store.getProperties(blob)).contentType).toBe('application/octet-stream');
    });

    it('conditions are honoured: an existing blob conflicts with if-none-match, a stale etag fails', async () => {
      await store.stageBlock(blob, id(0), bytes(2, 1));
      expect(await kindOf(store.commitBlocks(blob, [id(0)], { conditions: { ifMatch: '"0x1234"' } }))).toBe(
        'precondition-failed',
      );
      const { etag } = await store.commitBlocks(blob, [id(0)], { conditions: { ifNoneMatch: '*' } });
      await store.stageBlock(blob, id(1), bytes(2, 2));
      expect(await kindOf(store.commitBlocks(blob, [id(1)], { conditions: { ifNoneMatch: '*' } }))).toBe('conflict');
      const now = await store.upload(blob, 'rewritten');
      expect(now.etag).not.toBe(etag);
      expect(await kindOf(store.commitBlocks(blob, [id(0)], { conditions: { ifMatch: etag } }))).toBe('precondition-failed');
      expect((await store.getProperties(blob)).etag).toBe(now.etag);
    });

    it('a copy within the container keeps the block list, which a commit can mix with newly staged blocks', async () => {
      const from = `contract/${randomUUID()}.bin`;
      await store.stageBlock(from, id(0), bytes(2, 1));
      await store.stageBlock(from, id(1), bytes(2, 2));
      await store.commitBlocks(from, [id(0), id(1)], { metadata: { sha256: 'base' } });
      const copied = await store.copyWithin(blob, from, { metadata: { seeded: 'base' } });
      expect((await store.committedBlocks(blob)).map((b) => b.name)).toEqual([id(0), id(1)]);
      expect(await store.getProperties(blob)).toMatchObject({
        etag: copied.etag,
        contentLength: 4,
        metadata: { seeded: 'base' },
      });
      await store.stageBlock(blob, id(2), bytes(2, 3));
      await store.commitBlocks(blob, [id(0), id(2), id(1)], { conditions: { ifMatch: copied.etag } });
      expect(await readAll(await store.readStream(blob, 0))).toEqual(Buffer.from([1, 1, 3, 3, 2, 2]));
      expect(await readAll(await store.readStream(from, 0))).toEqual(Buffer.from([1, 1, 2, 2]));
      // Only of the very content asked for, never over a committed blob, and never from a blob that is not there.
      const fromEtag = (await store.getProperties(from)).etag;
      expect(await kindOf(store.copyWithin(`contract/${randomUUID()}.bin`, from, { sourceEtag: '"0x1234"' }))).toBe(
        'precondition-failed',
      );
      await store.copyWithin(`contract/${randomUUID()}.bin`, from, { sourceEtag: fromEtag });
      expect(await kindOf(store.copyWithin(blob, from))).toBe('conflict');
      expect(await kindOf(store.copyWithin(`contract/${randomUUID()}.bin`, `contract/${randomUUID()}.bin`))).toBe('not-found');
    });

    it('a commit keeping committed blocks takes them over blocks staged under their IDs since, in the order given', async () => {
      await store.stageBlock(blob, id(0), bytes(2, 1));
      await store.stageBlock(blob, id(1), bytes(2, 2));
      const { etag } = await store.commitBlocks(blob, [id(0), id(1)]);
      // Another writer stages other bytes under a committed ID; this commit names that ID committed.
      await store.stageBlock(blob, id(0), bytes(2, 9));
      await store.stageBlock(blob, id(2), bytes(2, 3));
      const keepCommitted = new Set([id(0), id(1)]);
      const typed = await store.commitBlocks(blob, [id(1), id(2), id(0)], {
        keepCommitted,
        conditions: { ifMatch: etag },
        contentType: 'application/x-test',
        metadata: { sha256: 'typed' },
      });
      expect(await readAll(await store.readStream(blob, 0))).toEqual(Buffer.from([2, 2, 3, 3, 1, 1]));
      expect(await store.getProperties(blob)).toMatchObject({
        etag: typed.etag,
        contentType: 'application/x-test',
        metadata: { sha256: 'typed' },
      });
      // A block named committed that is only staged, or named staged that is only committed, is no block at all.
      await store.stageBlock(blob, id(3), bytes(2, 4));
      const onlyStaged = store.commitBlocks(blob, [id(3)], { keepCommitted: new Set([id(3)]) });
      expect(await kindOf(onlyStaged)).toBe('invalid-block-list');
      expect(await kindOf(store.commitBlocks(blob, [id(1)], { keepCommitted: new Set() }))).toBe('invalid-block-list');
      expect(await kindOf(store.commitBlocks(blob, [id(1)], { keepCommitted, conditions: { ifMatch: etag } }))).toBe(
        'precondition-failed',
      );
      expect((await store.getProperties(blob)).etag).toBe(typed.etag);
    });

    // Put Blob discarding staged blocks, and Delete Blob of a never-committed blob, differ between Azure
    // and Azurite; the abandon of a publish (write, then delete) relies only on what they share.
    it('a whole upload replaces the content; a delete after it leaves nothing staged or committed', async () => {
      await store.stageBlock(blob, id(0), bytes(2, 1));
      await store.upload(blob, '{"ok":true}', { contentType: 'application/json', metadata: { sha256: 'x' } });
      expect(await store.getProperties(blob)).toMatchObject({
        contentLength: 11,
        contentType: 'application/json',
        metadata: { sha256: 'x' },
      });
      expect((await readAll(await store.readStream(blob, 0))).toString()).toBe('{"ok":true}');
      await store.stageBlock(blob, id(1), bytes(2, 1));
      expect(await store.deleteIfExists(blob)).toBe(true);
      expect(await kindOf(store.uncommittedBlocks(blob))).toBe('not-found');
      expect(await kindOf(store.getProperties(blob))).toBe('not-found');
      expect(await store.deleteIfExists(blob)).toBe(false);
    });

    it('an aborted call is not a typed outcome', async () => {
      const aborted = AbortSignal.abort(new Error('cancelled'));
      await expect(store.stageBlock(blob, id(0), bytes(2, 1), { abortSignal: aborted })).rejects.not.toBeInstanceOf(
        BlockStoreError,
      );
      await expect(store.getProperties(blob, { abortSignal: aborted })).rejects.not.toBeInstanceOf(BlockStoreError);
    });
  });
}
