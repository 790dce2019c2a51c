import { randomUUID } from 'node:crypto';
import { Catalog } from '../src/catalog/catalog';
import { MAX_DEPLOYMENT_ATTEMPTS, originalSource } from '../src/catalog/deployment-records';
import type { NewVersion, RunRef } from '../src/catalog/image-records';
import type { ImageMetadata } from '../src/images/inspect';
import { loadConfig } from '../src/config';
import { abandonClaim } from '../src/publish/claim';
import { createSddc, updateSddc } from '../src/sddc/registry';
import { unlessNotFound, type BlockStores } from '../src/storage/block-store';
import { MemoryBlockStore } from '../src/storage/memory-block-store';

/** The catalog's claims, updates and queries, on the real catalog server the tests start. */
let catalog: Catalog;
beforeAll(async () => {
  const uri = loadConfig().mongodbUri.replace(/\/[^/?]*(\?|$)/, `/vmhub_catalog_${randomUUID().slice(0, 8)}$1`);
  catalog = await Catalog.connect(uri);
});
afterAll(async () => {
  await catalog.db.dropDatabase();
  await catalog.close();
});

const run = (name: string): RunRef => ({ workflowId: `publish:${name}`, runId: randomUUID() });

function version(image: string, v: string): NewVersion {
  return {
    image,
    version: v,
    format: 'ova',
    sizeBytes: 1,
    blockSize: 4 * 2 ** 20,
    blockCount: 1,
    location: { storage: 'east-primary', container: 'vm-images', blob: `${image}/${v}/${image}-${v}.ova` },
  };
}

function ovfMetadata(cpus: number, osType: string): ImageMetadata {
  return {
    kind: 'ovf',
    resources: { cpus, memoryMiB: cpus * 1024, diskBytes: cpus * 2 ** 30 },
    os: { osType },
  } as unknown as ImageMetadata;
}

async function publish(image: string, v: string, metadata: ImageMetadata = ovfMetadata(2, 'ubuntu64Guest')): Promise<void> {
  const owner = run(`${image}:${v}`);
  expect(await catalog.versions.claim(version(image, v), owner)).toEqual({ state: 'claimed' });
  expect(await catalog.versions.markAvailable(image, v, owner, 'a'.repeat(64), metadata)).toBeDefined();
}

describe('claims: one owner per image@version', () => {
  it('a second run sees the owner, cannot mark available or end the claim, and takes over only from the owner it saw', async () => {
    const a = run('a');
    const b = run('b');
    const v = version('claimed', '1.0.0');
    expect(await catalog.versions.claim(v, a)).toEqual({ state: 'claimed' });
    expect(await catalog.versions.claim(v, a)).toEqual({ state: 'claimed' });
    expect(await catalog.versions.claim(v, b)).toEqual({ state: 'owned', owner: a });

    expect(await catalog.versions.markAvailable('claimed', '1.0.0', b, 'b'.repeat(64), ovfMetadata(1, 'x'))).toBeUndefined();
    expect(await catalog.versions.endClaim('claimed', '1.0.0', b, 'failed', 'not mine')).toBe(false);
    expect(await catalog.versions.get('claimed', '1.0.0')).toMatchObject({ status: 'uploading', owner: a });

    expect(await catalog.versions.takeOver(v, b, run('someone-else'))).toBe(false);
    expect(await catalog.versions.takeOver(v, b, a)).toBe(true);
    expect(await catalog.versions.endClaim('claimed', '1.0.0', a, 'failed', 'lost it')).toBe(false);
    expect(await catalog.versions.markAvailable('claimed', '1.0.0', b, 'b'.repeat(64), ovfMetadata(1, 'x'))).toMatchObject({
      status: 'available',
      owner: b,
    });
    expect(await catalog.versions.collection.countDocuments({ image: 'claimed' })).toBe(1);
  });

  it('a failed or cancelled version is claimed again; an available one is reported, never overwritten', async () => {
    const a = run('a');
    const v = version('again', '1.0.0');
    await catalog.versions.claim(v, a);
    expect(await catalog.versions.endClaim('again', '1.0.0', a, 'cancelled', 'cancelled')).toBe(true);
    const b = run('b');
    expect(await catalog.versions.claim(v, b)).toEqual({ state: 'claimed' });
    await catalog.versions.markAvailable('again', '1.0.0', b, 'c'.repeat(64), ovfMetadata(1, 'x'));
    const claim = await catalog.versions.claim(v, run('c'));
    expect(claim.state).toBe('available');
    expect(await catalog.versions.get('again', '1.0.0')).toMatchObject({ status: 'available', owner: b, sha256: 'c'.repeat(64) });
  });

  it('two runs claiming at the same moment: exactly one owns the version', async () => {
    const runs = Array.from({ length: 4 }, (_, i) => run(`race-${i}`));
    const claims = await Promise.all(runs.map((r) => catalog.versions.claim(version('race', '2.0.0'), r).catch(() => undefined)));
    expect(claims.filter((c) => c?.state === 'claimed')).toHaveLength(1);
    expect(await catalog.versions.collection.countDocuments({ image: 'race', version: '2.0.0' })).toBe(1);
  });
});

describe('abandoning a claim', () => {
  const store = new MemoryBlockStore();
  const storage = { store: () => store } as unknown as BlockStores;

  it('the owner removes its staged blocks and ends the claim; a repeat says so, and another run touches nothing', async () => {
    const owner = run('abandon');
    const v = version('abandoned', '1.0.0');
    await catalog.versions.claim(v, owner);
    await store.createContainer();
    await store.stageBlock(v.location.blob, 'block-0', Buffer.from('bytes'));
    const input = { image: v.image, version: v.version, location: v.location, status: 'cancelled' as const, error: 'cancelled' };

    expect(await abandonClaim({ storage, catalog }, input, run('other'))).toEqual({ owned: false, removed: [] });
    expect(await abandonClaim({ storage, catalog }, input, owner)).toEqual({
      owned: true,
      removed: ['1 staged blocks', 'catalog record marked cancelled'],
    });
    expect(await unlessNotFound(store.uncommittedBlocks(v.location.blob))).toBeUndefined();
    // A retry whose first answer was lost reports the end it made, not that the claim was someone else's.
    expect(await abandonClaim({ storage, catalog }, input, owner)).toEqual({
      owned: true,
      removed: ['catalog record marked cancelled'],
    });
    expect(await catalog.versions.get(v.image, v.version)).toMatchObject({ status: 'cancelled', owner });
  });

  it('an overlap is noted only on an available version', async () => {
    const owner = run('overlap');
    const v = version('overlapped', '1.0.0');
    await catalog.versions.claim(v, owner);
    const overlap = { previousVersion: '0.9.0', sharedBlocks: 1, blockCount: 1 };
    expect(await catalog.versions.setOverlap(v.image, v.version, overlap)).toBe(false);
    await catalog.versions.markAvailable(v.image, v.version, owner, 'a'.repeat(64), ovfMetadata(1, 'x'));
    expect(await catalog.versions.setOverlap(v.image, v.version, overlap)).toBe(true);
    expect((await catalog.versions.get(v.image, v.version))?.overlap).toEqual(overlap);
  });
});

describe('replicas are updated one location at a time', () => {
  it('concurrent updates of two locations both persist', async () => {
    await publish('replicated', '1.0.0');
    await Promise.all([
      catalog.versions.setReplica('replicated', '1.0.0', { location: 'west-replica', status: 'verified', etag: '"w"' }),
      catalog.versions.setReplica('replicated', '1.0.0', { location: 'north-replica', status: 'pending' }),
    ]);
    await catalog.versions.setReplica('replicated', '1.0.0', {
      location: 'west-replica',
      status: 'stale',
      reason: 'etag changed',
    });
    const record = await catalog.versions.get('replicated', '1.0.0');
    const byLocation = Object.fromEntries(record!.replicas.map((r) => [r.location, r.status]));
    expect(byLocation).toEqual({ 'west-replica': 'stale', 'north-replica': 'pending' });
  });
});

describe('queries', () => {
  beforeAll(async () => {
    await publish('nover', '0.9.0');
    await publish('nover', '1.0.0-rc.1');
    await publish('nover', '1.0.0');
    await publish('nover', '1.1.0-rc.1');
    await publish('photon', '5.0.0', ovfMetadata(1, 'vmwarePhoton64Guest'));
    await publish('ubuntu', '24.10.0', ovfMetadata(2, 'ubuntu64Guest'));
    await publish('big', '1.0.0', ovfMetadata(64, 'ubuntu64Guest'));
    await publish('boot', '1.0.0', { kind: 'iso', volumeId: 'BOOT' } as unknown as ImageMetadata);
    const owner = run('broken');
    await catalog.versions.claim(version('broken', '1.0.0'), owner);
    await catalog.versions.endClaim('broken', '1.0.0', owner, 'failed', 'bad bytes');
  });

  describe('latest', () => {
    it('is the highest release, never a pre-release; latest-pre counts pre-releases', async () => {
      expect((await catalog.versions.latest('nover'))?.version).toBe('1.0.0');
      expect((await catalog.versions.latest('nover', { includePrerelease: true }))?.version).toBe('1.1.0-rc.1');
      expect((await catalog.versions.resolve('nover', 'latest'))?.version).toBe('1.0.0');
      expect((await catalog.versions.resolve('nover', 'latest-pre'))?.version).toBe('1.1.0-rc.1');
      expect((await catalog.versions.resolve('nover', '1.0.0-rc.1'))?.version).toBe('1.0.0-rc.1');
      expect(await catalog.versions.resolve('nover', '3.0.0')).toBeUndefined();
    });

    it('leaves out deprecated versions, and an image with only pre-releases has no latest release', async () => {
      await publish('rc-only', '2.0.0-rc.1');
      expect(await catalog.versions.resolve('rc-only', 'latest')).toBeUndefined();
      expect((await catalog.versions.resolve('rc-only', 'latest-pre'))?.version).toBe('2.0.0-rc.1');

      await publish('dep', '1.0.0');
      await publish('dep', '1.1.0');
      await catalog.versions.deprecate('dep', '1.1.0', { message: 'broken network' });
      expect((await catalog.versions.resolve('dep', 'latest'))?.version).toBe('1.0.0');
      await catalog.versions.undeprecate('dep', '1.1.0');
      expect((await catalog.versions.resolve('dep', 'latest'))?.version).toBe('1.1.0');
    });

    it('is never a version that is not available', async () => {
      expect(await catalog.versions.resolve('broken', 'latest')).toBeUndefined();
      expect((await catalog.versions.resolve('broken', '1.0.0'))?.status).toBe('failed');
    });
  });

  describe('filters combine with AND', () => {
    const names = (records: Array<{ image: string }>) => [...new Set(records.map((r) => r.image))].sort();
    const refs = (records: Array<{ image: string; version: string }>) => records.map((r) => `${r.image}@${r.version}`);

    it('image and OS', async () => {
      expect(names(await catalog.versions.find({ image: 'photon', osType: 'ubuntu64Guest' }))).toEqual([]);
      expect(names(await catalog.versions.find({ image: 'ubuntu', osType: 'ubuntu64Guest' }))).toEqual(['ubuntu']);
      expect(names(await catalog.versions.find({ image: 'photon', osType: 'vmwarePhoton64Guest' }))).toEqual(['photon']);
    });

    it('capacity and OS', async () => {
      const ubuntuFitting64 = names(await catalog.versions.find({ fits: { cpus: 64 }, osType: 'ubuntu64Guest' }));
      expect(ubuntuFitting64).toContain('big');
      expect(ubuntuFitting64).not.toContain('photon');
      const ubuntuFitting4 = names(await catalog.versions.find({ fits: { cpus: 4 }, osType: 'ubuntu64Guest' }));
      expect(ubuntuFitting4).toEqual(expect.arrayContaining(['nover', 'ubuntu']));
      expect(ubuntuFitting4).not.toContain('big');
      expect(ubuntuFitting4).not.toContain('photon');
    });

    it('capacity and image', async () => {
      expect(names(await catalog.versions.find({ image: 'big', fits: { cpus: 4 } }))).toEqual([]);
      expect(names(await catalog.versions.find({ image: 'photon', fits: { cpus: 4 } }))).toEqual(['photon']);
      // An ISO declares no resources: it fits nothing, and is still listed without a capacity filter.
      expect(names(await catalog.versions.find({ image: 'boot', fits: { cpus: 64 } }))).toEqual([]);
      expect(names(await catalog.versions.find({ image: 'boot' }))).toEqual(['boot']);
    });

    it('each capacity key with the others', async () => {
      // ovfMetadata(n): n CPUs, n GiB of memory, n GiB of disk.
      const fitting = async (fits: Parameters<Catalog['versions']['find']>[0]['fits']) =>
        names(await catalog.versions.find({ image: 'big', fits }));
      expect(await fitting({ cpus: 64, memoryMiB: 64 * 1024 })).toEqual(['big']);
      expect(await fitting({ cpus: 64, memoryMiB: 64 * 1024 - 1 })).toEqual([]);
      expect(await fitting({ memoryMiB: 64 * 1024, diskBytes: 64 * 2 ** 30 - 1 })).toEqual([]);
      expect(await fitting({ cpus: 63, diskBytes: 64 * 2 ** 30 })).toEqual([]);
      expect(await fitting({ cpus: 64, memoryMiB: 64 * 1024, diskBytes: 64 * 2 ** 30 })).toEqual(['big']);
    });

    it('status and image, status and OS', async () => {
      expect(refs(await catalog.versions.find({ image: 'broken' }))).toEqual(['broken@1.0.0']);
      expect(refs(await catalog.versions.find({ image: 'broken', status: 'available' }))).toEqual([]);
      expect(refs(await catalog.versions.find({ image: 'broken', status: ['failed', 'cancelled'] }))).toEqual(['broken@1.0.0']);
      expect(names(await catalog.versions.find({ osType: 'vmwarePhoton64Guest', status: 'failed' }))).toEqual([]);
      expect(names(await catalog.versions.find({ osType: 'vmwarePhoton64Guest', status: 'available' }))).toEqual(['photon']);
    });

    it('image, OS and capacity together; findAvailable is the available ones', async () => {
      expect(names(await catalog.versions.find({ image: 'nover', osType: 'ubuntu64Guest', fits: { cpus: 2 } }))).toEqual([
        'nover',
      ]);
      expect(names(await catalog.versions.find({ image: 'nover', osType: 'ubuntu64Guest', fits: { cpus: 1 } }))).toEqual([]);
      expect(refs(await catalog.versions.findAvailable({ image: 'nover', osType: 'ubuntu64Guest' }))).toEqual([
        'nover@1.1.0-rc.1',
        'nover@1.0.0',
        'nover@1.0.0-rc.1',
        'nover@0.9.0',
      ]);
    });
  });
});

describe('the SDDC registry', () => {
  const east3 = {
    name: 'east-3',
    dataCenter: 'dc-east',
    taskQueue: 'sddc-east-3',
    capacity: { cpus: 32, memoryMiB: 262144, diskGiB: 2048 },
  };

  it('create refuses a name that is taken, with SddcExists naming sddc update', async () => {
    const created = await createSddc(catalog.sddcs, east3);
    expect(created).toMatchObject({ ...east3, createdAt: expect.any(Date) });
    expect(created.target).toBeUndefined();
    await expect(createSddc(catalog.sddcs, { ...east3, capacity: { cpus: 1, memoryMiB: 1, diskGiB: 1 } })).rejects.toMatchObject({
      type: 'SddcExists',
      message: expect.stringContaining('vmhub sddc update east-3'),
    });
    expect((await catalog.sddcs.get('east-3'))?.capacity).toEqual(east3.capacity);
  });

  it('create refuses a capacity that is not whole and positive', async () => {
    await expect(
      createSddc(catalog.sddcs, { ...east3, name: 'neg', capacity: { ...east3.capacity, cpus: -4 } }),
    ).rejects.toMatchObject({
      type: 'InvalidInput',
    });
    await expect(
      createSddc(catalog.sddcs, { ...east3, name: 'half', capacity: { ...east3.capacity, cpus: 2.5 } }),
    ).rejects.toMatchObject({
      type: 'InvalidInput',
    });
    expect(await catalog.sddcs.get('neg')).toBeNull();
  });

  it('update changes only the fields given', async () => {
    const updated = await updateSddc(catalog.sddcs, 'east-3', { capacity: { cpus: 16 } });
    expect(updated.capacity).toEqual({ cpus: 16, memoryMiB: 262144, diskGiB: 2048 });
    expect(updated).toMatchObject({ dataCenter: 'dc-east', taskQueue: 'sddc-east-3', updatedAt: expect.any(Date) });
    const moved = await updateSddc(catalog.sddcs, 'east-3', { dataCenter: 'dc-west', target: { kind: 'directory' } });
    expect(moved).toMatchObject({ dataCenter: 'dc-west', capacity: { cpus: 16 }, target: { kind: 'directory' } });
  });

  it('update of an SDDC that is not registered fails UnknownSddc, naming how to add it', async () => {
    await expect(updateSddc(catalog.sddcs, 'nosuch', { capacity: { cpus: 4 } })).rejects.toMatchObject({
      type: 'UnknownSddc',
      message: expect.stringMatching(
        /^SDDC nosuch is not registered \(registered: .*east-3.*\); add it with `vmhub sddc add nosuch/,
      ),
    });
    await expect(catalog.sddcs.require('nosuch')).rejects.toMatchObject({ type: 'UnknownSddc' });
    expect((await catalog.sddcs.require('east-3')).name).toBe('east-3');
    expect(await catalog.sddcs.get('nosuch')).toBeNull();
  });

  it('ensure registers a missing SDDC and leaves an existing one as it is', async () => {
    const first = await catalog.sddcs.ensure({ ...east3, name: 'seeded' });
    expect(first.created).toBe(true);
    await updateSddc(catalog.sddcs, 'seeded', { capacity: { memoryMiB: 1024 } });
    const again = await catalog.sddcs.ensure({ ...east3, name: 'seeded' });
    expect(again.created).toBe(false);
    expect(again.record.capacity).toEqual({ cpus: 32, memoryMiB: 1024, diskGiB: 2048 });
  });
});

describe('deployment records keep their attempts', () => {
  const row = { image: 'hist', version: '1.0.0', sddc: 'east-1' };
  const first = run('deploy-1');
  const second = run('deploy-2');

  it('a re-deploy appends, and the original source stays known', async () => {
    await catalog.deployments.record({ ...row, status: 'failed', source: 'west-replica', error: 'replica stale', run: first });
    const deployed = { ...row, status: 'deployed' as const, source: 'east-primary', path: '/ds/a', bytes: 10, run: first };
    await catalog.deployments.record(deployed);
    // The same activity retried: still one attempt.
    await catalog.deployments.record(deployed);
    await catalog.deployments.record({ ...row, status: 'already-present', run: second });
    const [record] = await catalog.deployments.of('hist', '1.0.0');
    // The top level is the latest attempt: what it left out is gone, not kept from an older one.
    expect(record).toMatchObject({ status: 'already-present', run: second, deployedAt: expect.any(Date) });
    expect(record.source).toBeUndefined();
    expect(record.path).toBeUndefined();
    expect(record.error).toBeUndefined();
    expect(record.attempts!.map((a) => [a.status, a.source ?? null, a.reason ?? null, a.run?.runId])).toEqual([
      ['failed', 'west-replica', 'replica stale', first.runId],
      ['deployed', 'east-primary', null, first.runId],
      ['already-present', null, null, second.runId],
    ]);
    expect(originalSource(record)).toBe('east-primary');
  });

  it("unfinishedBy: the failed and skipped SDDCs whose latest attempt was that deploy's, or one of its batches'", async () => {
    const at = (sddc: string) => ({ image: 'retry', version: '1.0.0', sddc });
    const batch = (id: string) => ({ workflowId: id, runId: 'r' });
    await catalog.deployments.record({
      ...at('a'),
      status: 'skipped',
      error: 'no agent: x',
      run: batch('deploy:retry:1.0.0:x:1-dc-east'),
    });
    await catalog.deployments.record({
      ...at('b'),
      status: 'failed',
      error: 'InvalidInput: y',
      run: batch('deploy:retry:1.0.0:x'),
    });
    await catalog.deployments.record({ ...at('c'), status: 'deployed', run: batch('deploy:retry:1.0.0:x:1-dc-east') });
    // Tried again by a later deploy, or by a run whose ID only starts the same: not this run's.
    await catalog.deployments.record({ ...at('d'), status: 'failed', error: 'z', run: batch('deploy:retry:1.0.0:x') });
    await catalog.deployments.record({ ...at('d'), status: 'failed', error: 'z', run: batch('deploy:retry:1.0.0:y') });
    await catalog.deployments.record({ ...at('e'), status: 'failed', error: 'z', run: batch('deploy:retry:1.0.0:xx') });
    const rows = await catalog.deployments.unfinishedBy('retry', '1.0.0', 'deploy:retry:1.0.0:x');
    expect(rows.map((r) => [r.sddc, r.status, r.error])).toEqual([
      ['a', 'skipped', 'no agent: x'],
      ['b', 'failed', 'InvalidInput: y'],
    ]);
  });

  it('a copy stays held after a later attempt failed, until it is removed', async () => {
    const key = { image: 'held', version: '1.0.0', sddc: 'east-1' };
    await catalog.deployments.record({ ...key, status: 'deployed', source: 'east-primary' });
    await catalog.deployments.record({ ...key, status: 'failed', error: 'agent gone' });
    expect([...(await catalog.deployments.heldVersions('held'))]).toEqual(['1.0.0']);
    await catalog.deployments.record({ ...key, status: 'removed' });
    expect([...(await catalog.deployments.heldVersions('held'))]).toEqual([]);
  });

  it('keeps the last attempts only, and the origin beyond them', async () => {
    const key = { image: 'hist', version: '1.1.0', sddc: 'east-1' };
    await catalog.deployments.record({ ...key, status: 'deployed', source: 'west-replica' });
    for (let i = 0; i < MAX_DEPLOYMENT_ATTEMPTS + 3; i++) await catalog.deployments.record({ ...key, status: 'already-present' });
    const [record] = await catalog.deployments.of('hist', '1.1.0');
    expect(record.attempts).toHaveLength(MAX_DEPLOYMENT_ATTEMPTS);
    expect(record.attempts!.every((a) => a.status === 'already-present')).toBe(true);
    expect(originalSource(record)).toBe('west-replica');
  });

  it('a removal ends the origin; the next deploy is where the new bytes came from', async () => {
    const key = { image: 'hist', version: '1.2.0', sddc: 'east-1' };
    await catalog.deployments.record({ ...key, status: 'deployed', source: 'west-replica' });
    await catalog.deployments.record({ ...key, status: 'removed' });
    expect(originalSource((await catalog.deployments.of('hist', '1.2.0'))[0])).toBeUndefined();
    await catalog.deployments.record({ ...key, status: 'deployed', source: 'east-primary' });
    expect(originalSource((await catalog.deployments.of('hist', '1.2.0'))[0])).toBe('east-primary');
  });

  it('a record written before attempts were kept keeps its state as the first attempt and origin', async () => {
    const key = { image: 'hist', version: '0.1.0', sddc: 'west-1' };
    const then = new Date(Date.UTC(2026, 0, 1));
    await catalog.deployments.collection.insertOne({
      ...key,
      status: 'deployed',
      source: 'west-replica',
      updatedAt: then,
      deployedAt: then,
    });
    await catalog.deployments.record({ ...key, status: 'already-present' });
    const [record] = await catalog.deployments.of('hist', '0.1.0');
    expect(record.attempts!.map((a) => [a.status, a.source ?? null])).toEqual([
      ['deployed', 'west-replica'],
      ['already-present', null],
    ]);
    expect(record.origin).toEqual({ status: 'deployed', source: 'west-replica', at: then });
  });

  it('attempts written at the same moment are all kept', async () => {
    const key = { image: 'hist', version: '2.0.0', sddc: 'west-1' };
    await Promise.all(
      Array.from({ length: 5 }, (_, i) =>
        catalog.deployments.record({ ...key, status: 'failed', error: `try ${i}`, run: run(`d${i}`) }),
      ),
    );
    const [record] = await catalog.deployments.of('hist', '2.0.0');
    expect(record.attempts!.map((a) => a.reason).sort()).toEqual(['try 0', 'try 1', 'try 2', 'try 3', 'try 4']);
    expect(await catalog.deployments.collection.countDocuments(key)).toBe(1);
  });
});
