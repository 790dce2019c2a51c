import { createHash } from 'node:crypto';
import type { Catalog } from '../../src/catalog/catalog';
import type { ImageVersionRecord, ReplicaRecord } from '../../src/catalog/image-records';
import { verifyBytesPerRun, versionsToVerify } from '../../src/lifecycle/verify-page';
import { checkReplica } from '../../src/lifecycle/replica-check';
import { replicateImage, type ReplicateCheckpoint } from '../../src/publish/replicate';
import { commitAsPublished } from '../harness/committed-blocks';
import type { BlockStores } from '../../src/storage/block-store';
import { MemoryBlockStore } from '../../src/storage/memory-block-store';
import type { Topology } from '../../src/topology/topology';
import { VmhubError } from '../../src/shared/errors';

/**
 * Replicas are verified by their bytes (src/publish/replica-content.ts), and VerifyReplicas reads them
 * within a byte budget, least recently hashed first (src/lifecycle/verify-page.ts). The same attacks on
 * Azurite are in test/lifecycle.test.ts.
 */
const location = (id: string, role: 'primary' | 'replica') => ({
  id,
  role,
  dataCenter: 'dc',
  endpoint: 'memory:',
  container: 'c',
});
const topology: Topology = {
  dataCenters: [],
  storage: [location('east-primary', 'primary'), location('west-replica', 'replica')],
  sddcs: [],
  sources: [],
};
const BLOB = 'app/1.0.0/app-1.0.0.iso';
const BLOCK = 1024;

function record(version: string, sizeBytes: number, replicas: ReplicaRecord[] = []): ImageVersionRecord {
  return {
    image: 'app',
    version,
    status: 'available',
    format: 'iso',
    sizeBytes,
    sha256: 'a'.repeat(64),
    location: { storage: 'east-primary', container: 'c', blob: BLOB },
    blockSize: BLOCK,
    blockCount: Math.ceil(sizeBytes / BLOCK),
    replicas,
    createdAt: new Date(0),
    updatedAt: new Date(0),
  } as ImageVersionRecord;
}

const quiet = { info: () => undefined, warn: () => undefined };
const liveness = { beat: () => undefined, keepBeating: <T>(fn: () => Promise<T>) => fn() };

/** A primary holding `content` as 1 KiB blocks, a replica store, and a catalog of that one version. */
async function world(content: Buffer) {
  const stores = new Map([
    ['east-primary', new MemoryBlockStore()],
    ['west-replica', new MemoryBlockStore()],
  ]);
  const primary = stores.get('east-primary')!;
  await primary.createContainer();
  const ids = await commitAsPublished(primary, BLOB, content, BLOCK);
  const version = { ...record('1.0.0', content.length), sha256: createHash('sha256').update(content).digest('hex') };
  const replicas: ReplicaRecord[] = [];
  const catalog = {
    versions: {
      get: async () => version,
      list: async () => [version],
      setReplica: async (_image: string, _version: string, r: ReplicaRecord) => {
        replicas.push(r);
        return true;
      },
    },
  } as unknown as Pick<Catalog, 'versions'>;
  const storage: BlockStores = { topology, store: (id) => stores.get(id)!, ensureContainers: async () => undefined };
  const replicate = (resumed?: ReplicateCheckpoint) =>
    replicateImage(
      { storage, catalog, concurrency: 2, trusted: [] },
      { image: 'app', version: '1.0.0', location: 'west-replica' },
      { resumed, signal: new AbortController().signal, liveness, log: quiet },
    );
  const check = (options: { hash?: boolean; skipPending?: boolean }) =>
    checkReplica(
      { storage, catalog },
      { image: 'app', version: '1.0.0', location: 'west-replica' },
      new AbortController().signal,
      quiet,
      options,
    );
  return { ids, replica: stores.get('west-replica')!, replicas, version, replicate, check };
}

describe('replication verified by content', () => {
  const content = Buffer.from(Array.from({ length: 3 * BLOCK }, (_, i) => (i * 7) % 251));

  it('blocks staged under the right IDs with other bytes are staged again, never committed as they are', async () => {
    const w = await world(content);
    await w.replica.createContainer();
    for (const id of w.ids) await w.replica.stageBlock(BLOB, id, Buffer.alloc(BLOCK, 0xee));
    const result = await w.replicate();
    expect(result).toMatchObject({ status: 'verified', sha256: w.version.sha256 });
    expect(result.hashedAt).toBeInstanceOf(Date);
    expect(Buffer.concat(await collect(w.replica)).equals(content)).toBe(true);
  });

  it('a blob with the right SHA-256 metadata and size but other bytes is copied again, not trusted', async () => {
    const w = await world(content);
    await w.replica.createContainer();
    await w.replica.upload(BLOB, Buffer.alloc(content.length, 1), { metadata: { sha256: w.version.sha256 } });
    expect((await w.replicate()).status).toBe('verified');
    expect(Buffer.concat(await collect(w.replica)).equals(content)).toBe(true);
  });

  it('a replica that hashes wrong even after a copy of every block is marked failed and removed, typed StorageMismatch', async () => {
    const w = await world(content);
    // Something else writes the replica: every block it is given lands as other bytes.
    const stage = w.replica.stageBlock.bind(w.replica);
    w.replica.stageBlock = (blob, id, bytes, options) => stage(blob, id, Buffer.alloc(bytes.length, 0xee), options);
    const err = await w.replicate().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VmhubError);
    expect((err as VmhubError).type).toBe('StorageMismatch');
    expect(w.replicas.at(-1)).toMatchObject({ location: 'west-replica', status: 'failed' });
    expect(w.replicas.at(-1)?.reason).toMatch(/hash to .* expected/);
    expect(
      await w.replica.getProperties(BLOB).then(
        () => true,
        () => false,
      ),
    ).toBe(false);
  });
});

describe('a check beside a running replication', () => {
  const content = Buffer.from(Array.from({ length: 3 * BLOCK }, (_, i) => (i * 11) % 253));

  /** A stale replica being replicated again: its old blob committed, the copy's first two blocks staged. */
  async function halfway() {
    const w = await world(content);
    await w.replica.createContainer();
    await w.replica.upload(BLOB, Buffer.alloc(BLOCK, 1));
    for (const i of [0, 1]) await w.replica.stageBlock(BLOB, w.ids[i], content.subarray(i * BLOCK, (i + 1) * BLOCK));
    w.version.replicas = [{ location: 'west-replica', status: 'pending' }];
    return w;
  }

  it('VerifyReplicas leaves a pending replica alone: reported pending, its blob and staged blocks kept, nothing recorded', async () => {
    const w = await halfway();
    for (const hash of [true, false]) {
      const result = await w.check({ hash, skipPending: true });
      expect(result).toMatchObject({ location: 'west-replica', status: 'pending' });
      expect(result.reason).toMatch(/replication .* running/);
    }
    expect(await w.replica.uncommittedBlocks(BLOB)).toHaveLength(2);
    expect((await w.replica.getProperties(BLOB)).contentLength).toBe(BLOCK);
    expect(w.replicas).toEqual([]);
  });

  it('the check after a cancel still settles a pending replica: stale, blob deleted', async () => {
    const w = await halfway();
    expect((await w.check({ skipPending: false })).status).toBe('stale');
    await expect(w.replica.uncommittedBlocks(BLOB)).rejects.toThrow(/no blob/);
  });

  it('a resumed replication whose staged blocks were discarded copies every block again instead of failing its commit', async () => {
    const w = await halfway();
    // The blob deleted under the copy (by a check that raced it) took the staged blocks with it.
    await w.check({ skipPending: false });
    const staged: string[] = [];
    const stage = w.replica.stageBlock.bind(w.replica);
    w.replica.stageBlock = (blob, id, bytes, options) => (staged.push(id), stage(blob, id, bytes, options));
    const result = await w.replicate({ next: 2, copied: 2 });
    expect(result).toMatchObject({ status: 'verified', sha256: w.version.sha256 });
    // Block 2 from the checkpoint, then all three again after the commit found 0 and 1 missing.
    expect(staged.sort()).toEqual([w.ids[2], ...w.ids].sort());
    expect(Buffer.concat(await collect(w.replica)).equals(content)).toBe(true);
  });

  it('a commit that fails for missing blocks on a copy from block 0 is not retried in a loop', async () => {
    const w = await halfway();
    await w.check({ skipPending: false });
    // Something deletes every block as soon as it is staged.
    w.replica.stageBlock = async () => undefined;
    await expect(w.replicate({ next: 2, copied: 2 })).rejects.toMatchObject({ kind: 'invalid-block-list' });
  });
});

async function collect(store: MemoryBlockStore): Promise<Buffer[]> {
  const chunks: Buffer[] = [];
  for await (const c of await store.readStream(BLOB, 0)) chunks.push(c);
  return chunks;
}

describe('VerifyReplicas byte budget', () => {
  const hashed = (at: number): ReplicaRecord[] => [
    { location: 'west-replica', status: 'verified', hashedAt: new Date(at), etag: '"1"' },
  ];
  // Each costs its size once: one replica location.
  const catalogOf = (records: ImageVersionRecord[]) =>
    ({ versions: { list: async () => records } }) as unknown as Pick<Catalog, 'versions'>;
  const now = new Date(1_000_000);
  const page = (records: ImageVersionRecord[], budget: number, after?: string, limit = 50) =>
    versionsToVerify({ catalog: catalogOf(records), topology }, { after, limit }, budget, now);

  it('takes the least recently hashed first, never hashed before all, as many as the budget holds', async () => {
    const records = [
      record('1.0.0', 100, hashed(3)),
      record('2.0.0', 100),
      record('3.0.0', 100, hashed(1)),
      record('4.0.0', 1000, hashed(2)),
      record('5.0.0', 100, [{ location: 'west-replica', status: 'stale', hashedAt: new Date(0) }]),
    ];
    const p = await page(records, 250);
    expect(p.versions.map((v) => v.version)).toEqual(['2.0.0', '5.0.0']);
    expect(p).toMatchObject({ left: 3 });
    expect(p.next).toBeUndefined();
  });

  it('a version larger than the whole budget is still checked, alone, when its turn comes', async () => {
    const p = await page([record('1.0.0', 5000), record('2.0.0', 10, hashed(1))], 100);
    expect(p.versions.map((v) => v.version)).toEqual(['1.0.0']);
    expect(p.left).toBe(1);
  });

  it('pages go on where the last ended, skip what the run hashed already, and spend one budget', async () => {
    const records = ['1.0.0', '2.0.0', '3.0.0', '4.0.0'].map((v, i) => record(v, 100, hashed(10 - i)));
    const seen: string[] = [];
    let after: string | undefined;
    for (let pages = 0; pages < 10; pages++) {
      const p = await page(records, 350, after, 1);
      seen.push(...p.versions.map((v) => v.version));
      // What this page checked is hashed now, after the run began.
      for (const v of p.versions) records.find((r) => r.version === v.version)!.replicas = hashed(now.getTime() + 1);
      if (p.next === undefined) {
        expect(p.left).toBe(1);
        break;
      }
      after = p.next;
    }
    expect(seen).toEqual(['4.0.0', '3.0.0', '2.0.0']);
  });

  it('a run that names an image has no budget; a cursor from before budgets starts afresh', async () => {
    const records = [record('1.0.0', 100), record('2.0.0', 100)];
    const first = await page(records, Infinity, undefined, 1);
    expect(first.versions.map((v) => v.version)).toEqual(['1.0.0']);
    const second = await page(records, Infinity, first.next, 1);
    expect(second.versions.map((v) => v.version)).toEqual(['2.0.0']);
    expect(second.left).toBeUndefined();
    expect((await page(records, Infinity, 'app@1.0.0')).versions).toHaveLength(2);
  });

  it("a day's budget is shared by the day's runs", () => {
    expect(verifyBytesPerRun(2 ** 40, 24 * 3600_000)).toBe(2 ** 40);
    expect(verifyBytesPerRun(2 ** 40, 6 * 3600_000)).toBe(2 ** 38);
  });
});
