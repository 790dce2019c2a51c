import { randomUUID } from 'node:crypto';
import { Catalog, type NewVersion, type RunRef } from '../src/catalog/catalog';
import type { ImageMetadata } from '../src/images/inspect';
import { loadConfig } from '../src/config';

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
  expect(await catalog.claimVersion(version(image, v), owner)).toEqual({ state: 'claimed' });
  expect(await catalog.markAvailable(image, v, owner, 'a'.repeat(64), metadata)).toBeDefined();
}

describe('claims: one owner per image@version', () => {
  it('a second run sees the owner, cannot mark available or end the claim, and takes over only from the owner it saw', async () => {
    const a = run('a');
    const b = run('b');
    const v = version('claimed', '1.0.0');
    expect(await catalog.claimVersion(v, a)).toEqual({ state: 'claimed' });
    expect(await catalog.claimVersion(v, a)).toEqual({ state: 'claimed' });
    expect(await catalog.claimVersion(v, b)).toEqual({ state: 'owned', owner: a });

    expect(await catalog.markAvailable('claimed', '1.0.0', b, 'b'.repeat(64), ovfMetadata(1, 'x'))).toBeUndefined();
    expect(await catalog.endClaim('claimed', '1.0.0', b, 'failed', 'not mine')).toBe(false);
    expect(await catalog.getVersion('claimed', '1.0.0')).toMatchObject({ status: 'uploading', owner: a });

    expect(await catalog.takeOver(v, b, run('someone-else'))).toBe(false);
    expect(await catalog.takeOver(v, b, a)).toBe(true);
    expect(await catalog.endClaim('claimed', '1.0.0', a, 'failed', 'lost it')).toBe(false);
    expect(await catalog.markAvailable('claimed', '1.0.0', b, 'b'.repeat(64), ovfMetadata(1, 'x'))).toMatchObject({
      status: 'available',
      owner: b,
    });
    expect(await catalog.versions.countDocuments({ image: 'claimed' })).toBe(1);
  });

  it('a failed or cancelled version is claimed again; an available one is reported, never overwritten', async () => {
    const a = run('a');
    const v = version('again', '1.0.0');
    await catalog.claimVersion(v, a);
    expect(await catalog.endClaim('again', '1.0.0', a, 'cancelled', 'cancelled')).toBe(true);
    const b = run('b');
    expect(await catalog.claimVersion(v, b)).toEqual({ state: 'claimed' });
    await catalog.markAvailable('again', '1.0.0', b, 'c'.repeat(64), ovfMetadata(1, 'x'));
    const claim = await catalog.claimVersion(v, run('c'));
    expect(claim.state).toBe('available');
    expect(await catalog.getVersion('again', '1.0.0')).toMatchObject({ status: 'available', owner: b, sha256: 'c'.repeat(64) });
  });

  it('two runs claiming at the same moment: exactly one owns the version', async () => {
    const runs = Array.from({ length: 4 }, (_, i) => run(`race-${i}`));
    const claims = await Promise.all(runs.map((r) => catalog.claimVersion(version('race', '2.0.0'), r).catch(() => undefined)));
    expect(claims.filter((c) => c?.state === 'claimed')).toHaveLength(1);
    expect(await catalog.versions.countDocuments({ image: 'race', version: '2.0.0' })).toBe(1);
  });
});

describe('replicas are updated one location at a time', () => {
  it('concurrent updates of two locations both persist', async () => {
    await publish('replicated', '1.0.0');
    await Promise.all([
      catalog.setReplica('replicated', '1.0.0', { location: 'west-replica', status: 'verified', etag: '"w"' }),
      catalog.setReplica('replicated', '1.0.0', { location: 'north-replica', status: 'pending' }),
    ]);
    await catalog.setReplica('replicated', '1.0.0', { location: 'west-replica', status: 'stale', reason: 'etag changed' });
    const record = await catalog.getVersion('replicated', '1.0.0');
    const byLocation = Object.fromEntries(record!.replicas.map((r) => [r.location, r.status]));
    expect(byLocation).toEqual({ 'west-replica': 'stale', 'north-replica': 'pending' });
  });
});

describe('queries', () => {
  beforeAll(async () => {
    await publish('nover', '1.0.0');
    await publish('nover', '1.1.0-rc.1');
    await publish('photon', '5.0.0', ovfMetadata(1, 'vmwarePhoton64Guest'));
    await publish('ubuntu', '24.10.0', ovfMetadata(2, 'ubuntu64Guest'));
    await publish('big', '1.0.0', ovfMetadata(64, 'ubuntu64Guest'));
  });

  it('latest is the highest release; a pre-release only when asked', async () => {
    expect((await catalog.latest('nover'))?.version).toBe('1.0.0');
    expect((await catalog.latest('nover', { includePrerelease: true }))?.version).toBe('1.1.0-rc.1');
  });

  const names = (records: Array<{ image: string }>) => [...new Set(records.map((r) => r.image))].sort();

  it('image and OS combine', async () => {
    expect(names(await catalog.findAvailable({ image: 'photon', osType: 'ubuntu64Guest' }))).toEqual([]);
    expect(names(await catalog.findAvailable({ image: 'ubuntu', osType: 'ubuntu64Guest' }))).toEqual(['ubuntu']);
  });

  it('capacity and OS combine', async () => {
    expect(names(await catalog.findAvailable({ fits: { cpus: 64 }, osType: 'ubuntu64Guest' }))).toEqual([
      'big',
      'nover',
      'replicated',
      'ubuntu',
    ]);
    expect(names(await catalog.findAvailable({ fits: { cpus: 4 }, osType: 'ubuntu64Guest' }))).toEqual([
      'nover',
      'replicated',
      'ubuntu',
    ]);
  });

  it('capacity and image combine', async () => {
    expect(names(await catalog.findAvailable({ image: 'big', fits: { cpus: 4 } }))).toEqual([]);
    expect(names(await catalog.findAvailable({ image: 'photon', fits: { cpus: 4 } }))).toEqual(['photon']);
  });
});
