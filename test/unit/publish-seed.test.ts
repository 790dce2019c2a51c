import { createHash } from 'node:crypto';
import type { ImageVersionRecord } from '../../src/catalog/image-records';
import type { Log } from '../../src/engine/liveness';
import { commitStaged } from '../../src/publish/commit';
import { seedBase, seedFromEarlier } from '../../src/publish/seed';
import { blockId, blockListDigest } from '../../src/storage/block-ids';
import { MemoryBlockStore } from '../../src/storage/memory-block-store';
import { planBlocks, type BlockPlan } from '../../src/shared/block-plan';

const MiB = 1024 * 1024;
const plan: BlockPlan = planBlocks(3 * 4 * MiB, 4 * MiB);
const location = { storage: 'east-primary', container: 'images', blob: 'images/app/2.0.0/app.iso' };
const log: Log = { info: () => undefined, warn: () => undefined };

function version(v: string, overrides: Partial<ImageVersionRecord> = {}): ImageVersionRecord {
  return {
    image: 'app',
    version: v,
    status: 'available',
    format: 'iso',
    sizeBytes: plan.sizeBytes,
    location: { storage: 'east-primary', container: 'images', blob: `images/app/${v}/app.iso` },
    etag: `"etag-${v}"`,
    blockSize: plan.blockSize,
    blockCount: plan.blockCount,
    replicas: [],
    createdAt: new Date(0),
    updatedAt: new Date(0),
    ...overrides,
  } as ImageVersionRecord;
}

const digest32 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex').slice(0, 32);
const block = (fill: number) => Buffer.alloc(plan.blockSize, fill);

/** Commits `fills` as the blocks of `blob`, IDs as publishes make them; the commit's etag. */
async function publishBlocks(store: MemoryBlockStore, blob: string, fills: number[]): Promise<string> {
  const ids = fills.map((fill, i) => blockId(i, digest32(block(fill))));
  for (const [i, id] of ids.entries()) await store.stageBlock(blob, id, block(fills[i]));
  return (await store.commitBlocks(blob, ids)).etag;
}

/** A catalog that lists 1.0.0, committed at `etag`. */
const catalogOf = (etag: string) => ({ versions: { list: async () => [version('1.0.0', { etag })] } }) as never;
const seedInput = { image: 'app', version: '2.0.0', location, plan, runId: 'r' };

describe('the earlier version a publish starts from', () => {
  it('is the highest available version below the new one, in the same location, with the same block size', () => {
    const candidates = [
      version('3.0.0'),
      version('1.9.0', { status: 'retired' } as Partial<ImageVersionRecord>),
      version('1.8.0', { blockSize: 8 * MiB }),
      version('1.7.0', { location: { storage: 'west-replica', container: 'images', blob: 'x' } }),
      version('1.2.0', { status: 'failed' }),
      // Published before commits' etags were recorded: nothing binds a copy of it.
      version('1.1.5', { etag: undefined }),
      version('1.1.0'),
      version('1.0.0'),
    ];
    expect(seedBase(candidates, { version: '2.0.0', location, plan })?.version).toBe('1.1.0');
    expect(seedBase(candidates, { version: '1.0.0', location, plan })).toBeUndefined();
    expect(seedBase([version('1.0.0-rc.1'), version('0.9.0')], { version: '1.0.0', location, plan })?.version).toBe('1.0.0-rc.1');
  });

  it('leaves the publish to send every block when the base goes during the copy', async () => {
    const store = new MemoryBlockStore();
    await store.createContainer();
    const etag = await publishBlocks(store, 'images/app/1.0.0/app.iso', [1, 2, 3]);
    // A retire deletes the base between the catalog's answer and the copy.
    const copy = store.copyWithin.bind(store);
    store.copyWithin = async (blob, from, options) => {
      await store.deleteIfExists(from);
      return copy(blob, from, options);
    };
    expect(await seedFromEarlier({ store, catalog: catalogOf(etag) }, seedInput, log)).toEqual({ blocks: 0 });
    expect(await store.uncommittedBlocks(location.blob).catch(() => [])).toEqual([]);
  });

  it("is not copied once its blob changed since its publish committed it, and no other run's blob is kept", async () => {
    const store = new MemoryBlockStore();
    await store.createContainer();
    const etag = await publishBlocks(store, 'images/app/1.0.0/app.iso', [1, 2, 3]);
    // A writer commits other bytes under the same IDs: the etag moves, and the blob is no base.
    await publishBlocks(store, 'images/app/1.0.0/app.iso', [1, 2, 3]);
    // Another run left a committed blob where 2.0.0 goes.
    await publishBlocks(store, location.blob, [7, 7, 7]);
    expect(await seedFromEarlier({ store, catalog: catalogOf(etag) }, seedInput, log)).toEqual({ blocks: 0 });
    expect(await store.getProperties(location.blob).catch((err: Error) => err.name)).toBe('BlockStoreError');
  });

  it('is a copy the commit mixes with the staged blocks, checked against the hashing pass', async () => {
    const store = new MemoryBlockStore();
    await store.createContainer();
    const catalog = catalogOf(await publishBlocks(store, 'images/app/1.0.0/app.iso', [1, 2, 3]));
    const seeded = await seedFromEarlier({ store, catalog }, seedInput, log);
    expect(seeded).toEqual({ from: '1.0.0', blocks: 3 });
    // A second attempt finds the copy and copies nothing again.
    expect(await seedFromEarlier({ store, catalog }, seedInput, log)).toEqual(seeded);

    // Block 1 changed: only it is staged; the commit takes blocks 0 and 2 from the copy.
    const fills = [1, 9, 3];
    await store.stageBlock(location.blob, blockId(1, digest32(block(9))), block(9));
    const ids = fills.map((fill, i) => blockId(i, digest32(block(fill))));
    const content = Buffer.concat(fills.map(block));
    const digest = { sha256: createHash('sha256').update(content).digest('hex'), blockListDigest: blockListDigest(ids) };
    const commit = (d: typeof digest) =>
      commitStaged(
        {
          store,
          location: location.storage,
          blob: location.blob,
          plan,
          format: 'iso',
          digest: d,
          image: 'app',
          version: '2.0.0',
          runId: 'r',
          signal: new AbortController().signal,
          withSource: async () => undefined,
        },
        log,
      );
    // A hashing pass that saw other bytes refuses the commit.
    await expect(commit({ ...digest, blockListDigest: blockListDigest([ids[0], ids[0], ids[2]]) })).rejects.toMatchObject({
      type: 'SourceChanged',
    });
    expect(await commit(digest)).toMatchObject({ committed: true });
    expect((await store.committedBlocks(location.blob)).map((b) => b.name)).toEqual(ids);
    const read: Buffer[] = [];
    for await (const chunk of await store.readStream(location.blob, 0)) read.push(chunk);
    expect(Buffer.concat(read).equals(content)).toBe(true);
  });
});
