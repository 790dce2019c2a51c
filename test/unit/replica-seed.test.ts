import { createHash, generateKeyPairSync, type KeyObject } from 'node:crypto';
import type { Catalog } from '../../src/catalog/catalog';
import type { ImageVersionRecord, ReplicaRecord, VersionStatus } from '../../src/catalog/image-records';
import { replicateImage, type ReplicateCheckpoint } from '../../src/publish/replicate';
import { blockSources, replicaBase } from '../../src/publish/replica-seed';
import { blockId } from '../../src/storage/block-ids';
import { commitAsPublished, signAsPublished } from '../harness/committed-blocks';
import { keyIdOf, type TrustedKey } from '../../src/provenance/keys';
import type { BlockStores, CommitOptions, CopyOptions } from '../../src/storage/block-store';
import type { Log } from '../../src/engine/liveness';
import { MemoryBlockStore } from '../../src/storage/memory-block-store';
import { checkReplica } from '../../src/lifecycle/replica-check';
import { VmhubError } from '../../src/shared/errors';
import type { Topology } from '../../src/topology/topology';

/**
 * Incremental replication (src/publish/replica-seed.ts): which earlier version a replica starts from,
 * where each block then comes from, and the runs on memory stores that fall back to a full copy. The
 * same on Azurite is in test/lifecycle.test.ts.
 */
const BLOCK = 1024;

function version(v: string, options: { status?: VersionStatus; blockSize?: number; replicas?: ReplicaRecord[] } = {}) {
  return {
    image: 'app',
    version: v,
    status: options.status ?? 'available',
    blockSize: options.blockSize ?? BLOCK,
    location: { storage: 'east-primary', container: 'c', blob: `app/${v}/app-${v}.iso` },
    replicas: options.replicas ?? [{ location: 'west-replica', status: 'verified' }],
  } as ImageVersionRecord;
}

describe('replicaBase', () => {
  const next = version('2.0.0');
  const base = (versions: ImageVersionRecord[]) => replicaBase(next, versions, 'west-replica')?.version;

  it.each([
    ['the highest earlier version verified there', ['1.0.0', '1.2.0', '1.10.0'].map((v) => version(v)), '1.10.0'],
    ['no earlier version', [version('2.0.0'), version('3.0.0')], undefined],
    ['a later version is never a base', [version('1.0.0'), version('2.1.0')], '1.0.0'],
    [
      'a replica not verified there is passed over',
      [version('1.0.0'), version('1.1.0', { replicas: [{ location: 'west-replica', status: 'stale' }] })],
      '1.0.0',
    ],
    [
      'a replica verified elsewhere only is passed over',
      [version('1.1.0', { replicas: [{ location: 'north-replica', status: 'verified' }] })],
      undefined,
    ],
    [
      'a retired or failed version is passed over',
      [version('1.0.0'), version('1.1.0', { status: 'retired' }), version('1.2.0', { status: 'failed' })],
      '1.0.0',
    ],
    ['another block size shares no block ID', [version('1.0.0'), version('1.1.0', { blockSize: 2 * BLOCK })], '1.0.0'],
    ['a pre-release below the version counts', [version('2.0.0-rc.1')], '2.0.0-rc.1'],
  ])('%s', (_, versions, expected) => {
    expect(base(versions)).toBe(expected);
  });
});

describe('blockSources', () => {
  const digest = (n: number) => n.toString(16).padStart(32, '0');
  const blocks = (digests: number[], size = BLOCK) => digests.map((d, i) => ({ name: blockId(i, digest(d)), size }));

  it('keeps the blocks committed under their IDs, reads moved ones in the replica, the rest from the primary', () => {
    expect(blockSources(blocks([1, 2, 3, 4]), blocks([1, 9, 3, 2]))).toEqual([
      { from: 'kept' },
      { from: 'replica', offset: 3 * BLOCK },
      { from: 'kept' },
      { from: 'primary' },
    ]);
  });

  it('without a seed, or with blocks of another size, everything comes from the primary', () => {
    expect(blockSources(blocks([1, 2]))).toEqual([{ from: 'primary' }, { from: 'primary' }]);
    expect(blockSources(blocks([1, 2]), blocks([1, 2], 512))).toEqual([{ from: 'primary' }, { from: 'primary' }]);
  });
});

const topology: Topology = {
  dataCenters: [],
  storage: ['east-primary', 'west-replica'].map((id) => ({
    id,
    role: id === 'east-primary' ? ('primary' as const) : ('replica' as const),
    dataCenter: 'dc',
    endpoint: 'memory:',
    container: 'c',
  })),
  sddcs: [],
  sources: [],
};
const quiet = { info: () => undefined, warn: () => undefined };
const liveness = { beat: () => undefined, keepBeating: <T>(fn: () => Promise<T>) => fn() };

/** Eight 1 KiB blocks, each its own bytes. */
const v1 = Buffer.concat(Array.from({ length: 8 }, (_, i) => Buffer.alloc(BLOCK, i + 1)));

/** A primary and a replica on memory, and a catalog whose versions the tests publish there. */
function memoryWorld(replica: MemoryBlockStore = new MemoryBlockStore(), signer?: Signer) {
  const primary = new MemoryBlockStore();
  const records = new Map<string, ImageVersionRecord>();
  const catalog = {
    versions: {
      get: async (_: string, v: string) => records.get(v) ?? null,
      list: async () => [...records.values()],
      setReplica: async (_: string, v: string, r: ReplicaRecord) => {
        const record = records.get(v)!;
        record.replicas = [...record.replicas.filter((x) => x.location !== r.location), r];
        return true;
      },
    },
  } as unknown as Pick<Catalog, 'versions'>;
  const storage: BlockStores = {
    topology,
    store: (id) => (id === 'east-primary' ? primary : replica),
    ensureContainers: async () => undefined,
  };
  async function publish(v: string, content: Buffer): Promise<ImageVersionRecord> {
    const record = { ...version(v, { replicas: [] }), sizeBytes: content.length, sha256: sha256(content) };
    await primary.createContainer();
    const ids = await commitAsPublished(primary, record.location.blob, content, BLOCK);
    if (signer) {
      const blocks = signer.blocks(v) ? { ids, size: BLOCK } : undefined;
      await signAsPublished(primary, record.location.blob, record, blocks, signer.key);
    }
    records.set(v, record);
    return record;
  }
  const replicate = (v: string, resumed?: ReplicateCheckpoint, log: Log = quiet) =>
    replicateImage(
      { storage, catalog, concurrency: 2, trusted: signer?.trusted ?? [] },
      { image: 'app', version: v, location: 'west-replica' },
      { resumed, signal: new AbortController().signal, liveness, log },
    );
  const replicaBytes = async (blob: string) => {
    const chunks: Buffer[] = [];
    for await (const c of await replica.readStream(blob, 0)) chunks.push(c);
    return Buffer.concat(chunks);
  };
  const check = (v: string) =>
    checkReplica(
      { storage, catalog },
      { image: 'app', version: v, location: 'west-replica' },
      new AbortController().signal,
      quiet,
      {
        hash: true,
      },
    );
  const westRecord = (v: string) => records.get(v)!.replicas.find((r) => r.location === 'west-replica');
  return { primary, replica, records, publish, replicate, replicaBytes, check, westRecord, signer };
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A log that keeps the reason each warning gives. */
function warnings(): { log: Log; warned: string[] } {
  const warned: string[] = [];
  return { log: { info: () => undefined, warn: (_, meta) => warned.push(String(meta?.reason)) }, warned };
}

/** A publisher's key, which versions it signs with their blocks listed, and the keys a replication trusts. */
interface Signer {
  key: KeyObject;
  trusted: TrustedKey[];
  blocks: (version: string) => boolean;
}

function signer(blocks: (version: string) => boolean = () => true): Signer {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { key: privateKey, trusted: [{ keyid: keyIdOf(publicKey), publicKey }], blocks };
}

/** v1 with block 5 changed and blocks 1 and 2 swapped. */
function changed(): Buffer {
  const v2 = Buffer.from(v1);
  v2.fill(0xaa, 5 * BLOCK, 6 * BLOCK);
  v1.copy(v2, BLOCK, 2 * BLOCK, 3 * BLOCK);
  v1.copy(v2, 2 * BLOCK, BLOCK, 2 * BLOCK);
  return v2;
}

/** Replaces the bytes behind committed blocks `at` of `blob`, keeping every block ID: a blob changed under its labels. */
async function rewriteBlocks(store: MemoryBlockStore, blob: string, at: number[]): Promise<void> {
  const blocks = await store.committedBlocks(blob);
  const bytes = Buffer.alloc(BLOCK);
  for (const [i, b] of blocks.entries()) {
    await store.readInto(blob, bytes, i * BLOCK);
    await store.stageBlock(blob, b.name, at.includes(i) ? Buffer.alloc(BLOCK, 0xee) : bytes);
  }
  await store.commitBlocks(
    blob,
    blocks.map((b) => b.name),
  );
}

/** A store whose Copy Blob discards the blocks the destination had staged, as Azure may. */
class DiscardingCopyStore extends MemoryBlockStore {
  override async copyWithin(blob: string, from: string): Promise<{ etag: string }> {
    const written = await super.copyWithin(blob, from);
    const committed = (await this.committedBlocks(blob)).map((b) => b.name);
    await this.commitBlocks(blob, committed);
    return written;
  }
}

describe('incremental replication on memory stores', () => {
  async function withV1(replica?: MemoryBlockStore) {
    const w = memoryWorld(replica);
    await w.publish('1.0.0', v1);
    expect(await w.replicate('1.0.0')).toMatchObject({ status: 'verified', crossed: { bytes: v1.length } });
    return w;
  }

  it('starts from the verified earlier version: only the changed block crosses, moved blocks are read in the replica', async () => {
    const w = await withV1();
    const v2 = await w.publish('2.0.0', changed());
    const result = await w.replicate('2.0.0');
    expect(result).toMatchObject({ status: 'verified', sha256: v2.sha256, crossed: { bytes: BLOCK, from: '1.0.0' } });
    expect((await w.replicaBytes(v2.location.blob)).equals(changed())).toBe(true);
  });

  it('bytes staged under a kept ID are caught by the read-back hash, and every block is copied again', async () => {
    const w = await withV1();
    const v2 = await w.publish('2.0.0', changed());
    const ids = (await w.primary.committedBlocks(v2.location.blob)).map((b) => b.name);
    // Block 0 is kept from the seed; other bytes staged under its ID win the commit.
    await w.replica.stageBlock(v2.location.blob, ids[0], Buffer.alloc(BLOCK, 0xee));
    const result = await w.replicate('2.0.0');
    expect(result.status).toBe('verified');
    expect(result.crossed).toEqual({ bytes: BLOCK + v1.length });
    expect((await w.replicaBytes(v2.location.blob)).equals(changed())).toBe(true);
  });

  it('a base whose replica blob is missing falls back to a full copy', async () => {
    const w = await withV1();
    await w.replica.deleteIfExists(w.records.get('1.0.0')!.location.blob);
    const v2 = await w.publish('2.0.0', changed());
    expect(await w.replicate('2.0.0')).toMatchObject({ status: 'verified', crossed: { bytes: v1.length } });
    expect((await w.replicaBytes(v2.location.blob)).equals(changed())).toBe(true);
  });

  it('a retry resumes on the seed its first attempt made, by the checkpoint', async () => {
    const w = await withV1();
    const v2 = await w.publish('2.0.0', changed());
    await w.replica.copyWithin(v2.location.blob, w.records.get('1.0.0')!.location.blob);
    const result = await w.replicate('2.0.0', { next: 0, copied: 0, from: '1.0.0', crossedBytes: 0 });
    expect(result).toMatchObject({ status: 'verified', crossed: { bytes: BLOCK, from: '1.0.0' } });
    expect((await w.replicaBytes(v2.location.blob)).equals(changed())).toBe(true);
  });

  it('a base whose replica changed since it was verified is not copied: every block crosses', async () => {
    const w = await withV1();
    await rewriteBlocks(w.replica, w.records.get('1.0.0')!.location.blob, [1, 2]);
    await w.publish('2.0.0', changed());
    expect(await w.replicate('2.0.0')).toMatchObject({ status: 'verified', crossed: { bytes: v1.length } });
  });

  it('a committed blob without a seed in the checkpoint counts for nothing: every block is copied', async () => {
    const w = await withV1();
    const v2 = await w.publish('2.0.0', changed());
    await w.replica.copyWithin(v2.location.blob, w.records.get('1.0.0')!.location.blob);
    expect(await w.replicate('2.0.0')).toMatchObject({ status: 'verified', crossed: { bytes: v1.length } });
    expect((await w.replicaBytes(v2.location.blob)).equals(changed())).toBe(true);
  });

  it('a moved block whose seeded bytes fail their digest is read from the primary, and counted as crossed', async () => {
    const w = await withV1();
    // v1's replica blob changed under its block IDs at the blocks v2 moves: the seed holds wrong bytes there.
    const v1Record = w.records.get('1.0.0')!;
    await rewriteBlocks(w.replica, v1Record.location.blob, [1, 2]);
    // ...and the record names the rewritten blob's etag (a writer of the catalog too), so the copy goes ahead.
    const { etag } = await w.replica.getProperties(v1Record.location.blob);
    v1Record.replicas = v1Record.replicas.map((r) => ({ ...r, etag }));
    const v2 = await w.publish('2.0.0', changed());
    expect(await w.replicate('2.0.0')).toMatchObject({ status: 'verified', crossed: { bytes: 3 * BLOCK, from: '1.0.0' } });
    expect((await w.replicaBytes(v2.location.blob)).equals(changed())).toBe(true);
  });

  describe('proven by signed block lists', () => {
    async function signedV1(options: { replica?: MemoryBlockStore; blocks?: (version: string) => boolean } = {}) {
      const w = memoryWorld(options.replica, signer(options.blocks));
      await w.publish('1.0.0', v1);
      expect(await w.replicate('1.0.0')).toMatchObject({ status: 'verified', hashedAt: expect.any(Date) });
      return w;
    }

    it('takes the kept blocks as the seed committed them, over bytes staged under their IDs, and reads back only what was staged', async () => {
      const w = await signedV1();
      const v2 = await w.publish('2.0.0', changed());
      const ids = (await w.primary.committedBlocks(v2.location.blob)).map((b) => b.name);
      await w.replica.stageBlock(v2.location.blob, ids[0], Buffer.alloc(BLOCK, 0xee));
      const whole = jest.spyOn(w.replica, 'readStream');
      const result = await w.replicate('2.0.0');
      expect(result).toMatchObject({ status: 'verified', crossed: { bytes: BLOCK, from: '1.0.0' } });
      expect(result.hashedAt).toBeUndefined();
      expect(whole).not.toHaveBeenCalled();
      expect((await w.replicaBytes(v2.location.blob)).equals(changed())).toBe(true);
    });

    it('a seed committed over after its copy fails the conditioned commit: the replica is built again and hashed whole', async () => {
      /** Someone commits the seeded blob anew (same list, new etag) as the first block is staged. */
      class RecommittingStore extends MemoryBlockStore {
        private done = false;
        override async stageBlock(blob: string, id: string, bytes: Buffer): Promise<void> {
          if (!this.done && blob.includes('2.0.0')) {
            this.done = true;
            await this.commitBlocks(
              blob,
              (await this.committedBlocks(blob)).map((b) => b.name),
            );
          }
          return super.stageBlock(blob, id, bytes);
        }
      }
      const w = await signedV1({ replica: new RecommittingStore() });
      const v2 = await w.publish('2.0.0', changed());
      const result = await w.replicate('2.0.0');
      expect(result).toMatchObject({
        status: 'verified',
        hashedAt: expect.any(Date),
        crossed: { bytes: 2 * BLOCK, from: '1.0.0' },
      });
      expect((await w.replicaBytes(v2.location.blob)).equals(changed())).toBe(true);
    });

    it('blocks staged meanwhile under the right IDs at other sizes are caught, and every block is copied again', async () => {
      const shift = 100;
      /** Before the commit that keeps the seed, a writer restages blocks 1 and 5: one longer, one shorter. */
      class ShiftingStore extends MemoryBlockStore {
        override async commitBlocks(blob: string, ids: string[], options: CommitOptions = {}): Promise<{ etag: string }> {
          if (options.keepCommitted) {
            const next = changed();
            await this.stageBlock(blob, ids[1], Buffer.concat([next.subarray(BLOCK, 2 * BLOCK), Buffer.alloc(shift, 0xee)]));
            await this.stageBlock(blob, ids[5], next.subarray(5 * BLOCK + shift, 6 * BLOCK));
          }
          return super.commitBlocks(blob, ids, options);
        }
      }
      const w = await signedV1({ replica: new ShiftingStore() });
      // Block 5 begins as block 4 ends, so the read-back at the primary's offsets alone would find it right.
      const content = changed();
      content.fill(5, 5 * BLOCK, 5 * BLOCK + shift);
      const v2 = await w.publish('2.0.0', content);
      const { log, warned } = warnings();
      const result = await w.replicate('2.0.0', undefined, log);
      expect(warned).toEqual(["has committed blocks other than the primary's, by ID or size"]);
      expect(result).toMatchObject({ status: 'verified', hashedAt: expect.any(Date) });
      expect((await w.replicaBytes(v2.location.blob)).equals(content)).toBe(true);
    });

    it('a replica proven by its blocks is no base for the next one: that one is hashed whole', async () => {
      const w = await signedV1();
      await w.publish('2.0.0', changed());
      expect((await w.replicate('2.0.0')).hashedAt).toBeUndefined();
      const v3 = Buffer.from(changed()).fill(0xbb, 7 * BLOCK);
      const record = await w.publish('3.0.0', v3);
      expect(await w.replicate('3.0.0')).toMatchObject({
        status: 'verified',
        hashedAt: expect.any(Date),
        crossed: { from: '2.0.0' },
      });
      expect((await w.replicaBytes(record.location.blob)).equals(v3)).toBe(true);
    });

    it('a base hashed whole at another etag than the one its seed was copied at proves nothing of the seed', async () => {
      let w: ReturnType<typeof memoryWorld> | undefined = undefined;
      /** Once the seed is copied, the base's record names another etag, hashed whole (a verify in between). */
      class ReverifiedBaseStore extends MemoryBlockStore {
        override async copyWithin(blob: string, from: string, options?: CopyOptions): Promise<{ etag: string }> {
          const copied = await super.copyWithin(blob, from, options);
          const base = w!.records.get('1.0.0')!;
          base.replicas = base.replicas.map((r) => ({ ...r, etag: '"0xre-verified"', hashedAt: new Date() }));
          return copied;
        }
      }
      w = await signedV1({ replica: new ReverifiedBaseStore() });
      const v2 = await w.publish('2.0.0', changed());
      const result = await w.replicate('2.0.0');
      expect(result).toMatchObject({ status: 'verified', hashedAt: expect.any(Date), crossed: { bytes: BLOCK, from: '1.0.0' } });
      expect((await w.replicaBytes(v2.location.blob)).equals(changed())).toBe(true);
    });

    it('a statement that cannot be read, or that names other bytes than the catalog, means the whole hash, and says why', async () => {
      const w = await signedV1();
      const v2 = await w.publish('2.0.0', changed());
      const { log, warned } = warnings();
      // Reading 1.0.0's envelope on the primary fails with a plain error: this run hashes whole.
      const readInto = w.primary.readInto.bind(w.primary);
      const failing = jest.spyOn(w.primary, 'readInto').mockImplementation(async (blob, ...rest) => {
        if (blob === `${w.records.get('1.0.0')!.location.blob}.dsse.json`) throw new Error('connection reset');
        return readInto(blob, ...rest);
      });
      expect(await w.replicate('2.0.0', undefined, log)).toMatchObject({ status: 'verified', hashedAt: expect.any(Date) });
      expect(warned).toEqual(['connection reset']);
      failing.mockRestore();

      // The catalog names another SHA-256 for 1.0.0 than its statement signed.
      await w.replica.deleteIfExists(v2.location.blob);
      const v1Record = w.records.get('1.0.0')!;
      const signedSha = v1Record.sha256;
      v1Record.sha256 = 'f'.repeat(64);
      await w.replicate('2.0.0', undefined, log).catch(() => undefined);
      v1Record.sha256 = signedSha;
      expect(warned[1]).toMatch(/app@1.0.0: the catalog says SHA-256 f{64}/);
    });

    it('an earlier version signed without its blocks leaves the replica to the whole hash', async () => {
      const w = await signedV1({ blocks: (v) => v !== '1.0.0' });
      const v2 = await w.publish('2.0.0', changed());
      const result = await w.replicate('2.0.0');
      expect(result).toMatchObject({ status: 'verified', hashedAt: expect.any(Date), crossed: { bytes: BLOCK, from: '1.0.0' } });
      expect((await w.replicaBytes(v2.location.blob)).equals(changed())).toBe(true);
    });

    it('a primary whose block list is not the one signed leaves the replica to the whole hash', async () => {
      const w = await signedV1();
      const v2 = await w.publish('2.0.0', changed());
      // The statement of 2.0.0 signed another list (the first version's).
      const ids = (await w.primary.committedBlocks(w.records.get('1.0.0')!.location.blob)).map((b) => b.name);
      await signAsPublished(w.primary, v2.location.blob, v2, { ids, size: BLOCK }, w.signer!.key);
      const result = await w.replicate('2.0.0');
      expect(result).toMatchObject({ status: 'verified', hashedAt: expect.any(Date) });
      expect((await w.replicaBytes(v2.location.blob)).equals(changed())).toBe(true);
    });
  });

  it('a final failure marks the replica failed and removes the seeded blob', async () => {
    const w = await withV1();
    const v2 = await w.publish('2.0.0', changed());
    // The primary's changed block holds bytes its ID does not name: no attempt can copy it.
    await rewriteBlocks(w.primary, v2.location.blob, [5]);
    const failure = await w.replicate('2.0.0').catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(VmhubError);
    expect(failure).toMatchObject({ type: 'StorageMismatch', message: expect.stringMatching(/block 5 read from east-primary/) });
    expect(w.westRecord('2.0.0')).toMatchObject({ status: 'failed', reason: expect.stringMatching(/block 5/) });
    await expect(w.replica.getProperties(v2.location.blob)).rejects.toMatchObject({ kind: 'not-found' });
  });

  it('a resumed unseeded attempt whose staged blocks a seed discards starts at block 0, counting only what this run reads', async () => {
    const w = await withV1(new DiscardingCopyStore());
    const v2 = await w.publish('2.0.0', changed());
    // An earlier attempt, unseeded, staged blocks 0 to 3 and crossed their bytes.
    const blocks = await w.primary.committedBlocks(v2.location.blob);
    for (let i = 0; i < 4; i++)
      await w.replica.stageBlock(v2.location.blob, blocks[i].name, changed().subarray(i * BLOCK, (i + 1) * BLOCK));
    const result = await w.replicate('2.0.0', { next: 4, copied: 4, crossedBytes: 4 * BLOCK });
    expect(result).toMatchObject({ status: 'verified', crossed: { bytes: BLOCK, from: '1.0.0' } });
    expect((await w.replicaBytes(v2.location.blob)).equals(changed())).toBe(true);
  });

  it('a commit that finds staged blocks gone rebuilds on the intact seed rather than copying every block', async () => {
    const w = await withV1();
    const v2 = await w.publish('2.0.0', changed());
    // The seed is committed; the blocks 1, 2 and 5 the checkpoint counts as staged are gone.
    await w.replica.copyWithin(v2.location.blob, w.records.get('1.0.0')!.location.blob);
    const result = await w.replicate('2.0.0', { next: 6, copied: 3, from: '1.0.0', crossedBytes: BLOCK });
    expect(result).toMatchObject({ status: 'verified', crossed: { bytes: BLOCK, from: '1.0.0' } });
    expect((await w.replicaBytes(v2.location.blob)).equals(changed())).toBe(true);
  });

  it('a verify that hashes a replica right keeps what its replication crossed', async () => {
    const w = await withV1();
    await w.publish('2.0.0', changed());
    await w.replicate('2.0.0');
    expect(await w.check('2.0.0')).toMatchObject({ status: 'verified' });
    expect(w.westRecord('2.0.0')).toMatchObject({ status: 'verified', crossed: { bytes: BLOCK, from: '1.0.0' } });
    expect(w.westRecord('2.0.0')?.hashedAt).toBeInstanceOf(Date);
  });
});
