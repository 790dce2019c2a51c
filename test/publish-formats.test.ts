import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { PublishInput, PublishResult } from '../src/shared/publish-input';
import { filler, isoImage, manifestLine, ovaFromDescriptor, tarArchive, withFileSizes } from './images/build';
import { describeWithFixtures, fixture } from './images/fixtures';
import { unlessNotFound } from '../src/storage/block-store';
import { readBlob, repositoryRoot, startWorld, type TestWorld, workflowFailure } from './helpers';

const MiB = 2 ** 20;

/** Publishing each supported format end to end: the catalog record carries what is inside the image. */
describe('PublishImage of OVA, OVF package and ISO', () => {
  let world: TestWorld;
  beforeAll(async () => {
    world = await startWorld({ blockSizeBytes: 4 * MiB });
  });
  afterAll(() => world.close());

  const run = (input: PublishInput) =>
    world.client.workflow.execute('PublishImage', {
      args: [input],
      taskQueue: world.config.taskQueue,
      workflowId: `publish:${input.image}:${input.version ?? 'declared'}:${randomUUID()}`,
    }) as Promise<PublishResult>;

  const failure = (input: PublishInput) => workflowFailure(run(input));

  const blobBytes = (r: PublishResult) => readBlob(world.deps.storage.store(r.location.storage), r.location.blob);

  describeWithFixtures('from real descriptors', () => {
    it('an OVA: CPUs, memory, disks, OS and product read from inside the image', async () => {
      const { path: ova } = ovaFromDescriptor(path.join(repositoryRoot(), 'csr.ova'), fixture('cot__csr1000v_2017.ovf'), {
        fileSize: 6 * MiB,
        manifest: 'sha256',
      });
      const result = await run({ source: 'csr.ova', image: 'csr1000v', version: '17.3.1' });
      expect(result.format).toBe('ova');
      expect(result.sha256).toBe(createHash('sha256').update(fs.readFileSync(ova)).digest('hex'));
      expect(result.blockCount).toBe(Math.ceil(fs.statSync(ova).size / (4 * MiB)));

      const record = await world.deps.catalog.versions.get('csr1000v', '17.3.1');
      expect(record?.status).toBe('available');
      expect(record?.metadata).toMatchObject({
        kind: 'ova',
        product: 'Cisco CSR 1000V Cloud Services Router',
        vendor: 'Cisco Systems, Inc.',
        version: 'DEV',
        os: { osType: 'other3xLinux64Guest', description: 'Cisco IOS-XE Software' },
        cpus: 1,
        memoryMiB: 4096,
        resources: { cpus: 1, memoryMiB: 4096, diskBytes: 2 ** 30 },
        archive: { descriptor: 'appliance.ovf', manifest: 'appliance.mf', descriptorFirst: true },
      });
      const files = record?.metadata?.kind === 'ova' ? record.metadata.archive.files : [];
      expect(files.length).toBeGreaterThan(2);
      expect(files.filter((f) => f.role !== 'manifest').every((f) => f.manifest === 'verified')).toBe(true);
    });

    it('asks for a version when the image declares one that is not semantic', async () => {
      ovaFromDescriptor(path.join(repositoryRoot(), 'photon.ova'), fixture('govmomi__photon5.ovf'));
      const err = await failure({ source: 'photon.ova', image: 'photon' });
      expect(err.type).toBe('InvalidInput');
      expect(err.message).toContain('"5.0"');
      expect(await world.deps.catalog.versions.collection.countDocuments({ image: 'photon' })).toBe(0);
    });

    it('an OVF package: descriptor, manifest and disks published together as one OVA', async () => {
      const dir = path.join(repositoryRoot(), 'ttylinux');
      fs.mkdirSync(dir, { recursive: true });
      const disk = filler(5 * MiB + 3, 8);
      const descriptor = Buffer.from(
        withFileSizes(fixture('govmomi__ttylinux-pc_i486-16.1.ovf'), { 'ttylinux-pc_i486-16.1-disk1.vmdk': disk.length }),
      );
      fs.writeFileSync(path.join(dir, 'ttylinux.ovf'), descriptor);
      fs.writeFileSync(path.join(dir, 'ttylinux-pc_i486-16.1-disk1.vmdk'), disk);
      fs.writeFileSync(
        path.join(dir, 'ttylinux.mf'),
        [
          manifestLine('sha1', 'ttylinux.ovf', descriptor, 1),
          manifestLine('sha1', 'ttylinux-pc_i486-16.1-disk1.vmdk', disk, 2),
        ].join('\n'),
      );
      const result = await run({ source: 'ttylinux/ttylinux.ovf', image: 'ttylinux', version: '16.1.0' });
      expect(result.format).toBe('ovf');
      expect(result.location.blob).toBe('ttylinux/16.1.0/ttylinux-16.1.0.ova');
      expect(result.metadata).toMatchObject({
        kind: 'ova',
        name: 'ttylinux-pc_i486-16.1',
        firmware: 'efi',
        cpus: 1,
        memoryMiB: 32,
      });
      if (result.metadata.kind === 'ova') {
        expect(result.metadata.archive.files.map((f) => [f.name, f.manifest])).toEqual([
          ['ttylinux.ovf', 'verified'],
          ['ttylinux.mf', 'not-in-manifest'],
          ['ttylinux-pc_i486-16.1-disk1.vmdk', 'verified'],
        ]);
      }
      // The blob is a real tar that GNU tar lists and extracts byte for byte.
      const blob = path.join(dir, 'published.ova');
      fs.writeFileSync(blob, await blobBytes(result));
      const { execFileSync } = await import('node:child_process');
      expect(execFileSync('tar', ['-tf', blob], { encoding: 'utf8' }).trim().split('\n')).toEqual([
        'ttylinux.ovf',
        'ttylinux.mf',
        'ttylinux-pc_i486-16.1-disk1.vmdk',
      ]);
      expect(execFileSync('tar', ['-xOf', blob, 'ttylinux-pc_i486-16.1-disk1.vmdk'], { maxBuffer: 64 * MiB }).equals(disk)).toBe(
        true,
      );

      const again = await run({ source: 'ttylinux/ttylinux.ovf', image: 'ttylinux', version: '16.1.0' });
      expect(again.sha256).toBe(result.sha256);
    });

    it('an OVF package missing a referenced file is InvalidImage', async () => {
      const dir = path.join(repositoryRoot(), 'broken-package');
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(path.join(dir, 'p.ovf'), fixture('govmomi__ttylinux-pc_i486-16.1.ovf'));
      const err = await failure({ source: 'broken-package/p.ovf', image: 'broken', version: '1.0.0' });
      expect(err.type).toBe('InvalidImage');
      expect(err.message).toContain('ttylinux-pc_i486-16.1-disk1.vmdk');
    });
  });

  it('takes the version from the descriptor when it is semantic', async () => {
    const descriptor = `<?xml version="1.0"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
  <References/>
  <VirtualSystem ovf:id="edge"><Info/><Name>acme-edge</Name>
    <ProductSection><Info/><Product>Acme Edge</Product><Vendor>Acme</Vendor><Version>3.4.1</Version><FullVersion>3.4.1-build.77</FullVersion></ProductSection>
  </VirtualSystem>
</Envelope>`;
    tarArchive(path.join(repositoryRoot(), 'acme-edge.ova'), [{ name: 'acme-edge.ovf', bytes: Buffer.from(descriptor) }]);
    const result = await run({ source: 'acme-edge.ova', image: 'acme-edge' });
    expect(result.version).toBe('3.4.1');
    expect(result.metadata).toMatchObject({ product: 'Acme Edge', version: '3.4.1', fullVersion: '3.4.1-build.77' });
  });

  it('an ISO: volume, publisher and El Torito boot record', async () => {
    isoImage(path.join(repositoryRoot(), 'installer.iso'), {
      volumeId: 'INSTALLER_2_1',
      publisher: 'ACME',
      bootable: true,
      extraBytes: 9 * MiB,
    });
    const result = await run({ source: 'installer.iso', image: 'installer', version: '2.1.0' });
    expect(result.format).toBe('iso');
    expect(result.metadata).toMatchObject({
      kind: 'iso',
      volumeId: 'INSTALLER_2_1',
      publisher: 'ACME',
      bootable: true,
      joliet: true,
    });
  });

  it('an OVA whose manifest disagrees: ManifestMismatch, no available version, no committed blob', async () => {
    const descriptor = `<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
  <References><File ovf:href="d.vmdk" ovf:id="f"/></References><VirtualSystem ovf:id="v"><Name>v</Name></VirtualSystem></Envelope>`;
    tarArchive(path.join(repositoryRoot(), 'tampered.ova'), [
      { name: 'v.ovf', bytes: Buffer.from(descriptor) },
      { name: 'v.mf', bytes: Buffer.from(manifestLine('sha256', 'd.vmdk', Buffer.from('original'))) },
      { name: 'd.vmdk', bytes: filler(5 * MiB, 4) },
    ]);
    const err = await failure({ source: 'tampered.ova', image: 'tampered', version: '1.0.0' });
    expect(err.type).toBe('ManifestMismatch');
    const record = await world.deps.catalog.versions.get('tampered', '1.0.0');
    expect(record?.status).toBe('failed');
    expect(
      await unlessNotFound(world.deps.storage.store('east-primary').getProperties('tampered/1.0.0/tampered-1.0.0.ova')),
    ).toBeUndefined();
  });

  it('refuses the 150,000-attribute OVA of issue 21 as InvalidImage naming the limit, while a publish on the same worker carries on unharmed', async () => {
    const envelope = `xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"`;
    const attributes = Array.from({ length: 150_000 }, (_, i) => `a${i}=""`).join(' ');
    const hostile = `<Envelope ${envelope}><References/><VirtualSystem ovf:id="v" ${attributes}><Name>v</Name></VirtualSystem></Envelope>`;
    tarArchive(path.join(repositoryRoot(), 'wide.ova'), [{ name: 'wide.ovf', bytes: Buffer.from(hostile) }]);
    const plain = `<Envelope ${envelope}><References><File ovf:href="d.vmdk" ovf:id="f"/></References><VirtualSystem ovf:id="v"><Name>v</Name></VirtualSystem></Envelope>`;
    ovaFromDescriptor(path.join(repositoryRoot(), 'beside.ova'), plain, { fileSize: 9 * MiB });

    const workflowId = `publish:beside:1.0.0:${randomUUID()}`;
    const beside = world.client.workflow.execute('PublishImage', {
      args: [{ source: 'beside.ova', image: 'beside', version: '1.0.0' } satisfies PublishInput],
      taskQueue: world.config.taskQueue,
      workflowId,
    }) as Promise<PublishResult>;
    const err = await failure({ source: 'wide.ova', image: 'wide', version: '1.0.0' });
    expect(err.type).toBe('InvalidImage');
    expect(err.message).toContain('attributes on one element (attributesPerElement: 256)');
    expect((await world.deps.catalog.versions.get('wide', '1.0.0'))?.status).not.toBe('available');

    expect((await beside).blockCount).toBeGreaterThan(1);
    expect((await world.deps.catalog.versions.get('beside', '1.0.0'))?.status).toBe('available');
    // Unharmed: every activity of the other publish succeeded at its first attempt, none timed out or failed.
    const events = (await world.client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
    const started = events.filter((e) => e.activityTaskStartedEventAttributes);
    expect(started.length).toBeGreaterThan(2);
    expect(started.map((e) => e.activityTaskStartedEventAttributes!.attempt)).toEqual(started.map(() => 1));
    expect(events.filter((e) => e.activityTaskTimedOutEventAttributes || e.activityTaskFailedEventAttributes)).toEqual([]);
  });
});
