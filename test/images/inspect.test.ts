import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import tar from 'tar-stream';
import { VmhubError } from '../../src/shared/errors';
import { createInspector, type ImageMetadata } from '../../src/images/inspect';
import { parseIso } from '../../src/images/iso';
import { parseManifest } from '../../src/images/manifest';
import { peekDescriptor } from '../../src/images/ova';
import { parseOvf } from '../../src/images/ovf/envelope';
import { describeOvf } from '../../src/images/ovf/metadata';
import { entryHeader } from '../../src/images/tar-header';
import { filler, isoImage, manifestLine, ovaFromDescriptor, tarArchive, tempDir } from './build';
import { describeWithFixtures, fixture } from './fixtures';

const MiB = 2 ** 20;

async function inspectFile(file: string, format: 'ova' | 'iso' = 'ova', chunk = 64 * 1024): Promise<ImageMetadata> {
  const bytes = fs.readFileSync(file);
  const inspector = createInspector(format);
  for (let at = 0; at < bytes.length; at += chunk) await inspector.write(bytes.subarray(at, at + chunk));
  return inspector.finish();
}

async function failure(p: Promise<unknown>): Promise<VmhubError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(VmhubError);
  return err as VmhubError;
}

const SIMPLE = `<?xml version="1.0"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
  xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData">
  <References><File ovf:href="disk.vmdk" ovf:id="f1" ovf:size="1"/></References>
  <DiskSection><Info/><Disk ovf:diskId="d1" ovf:fileRef="f1" ovf:capacity="2" ovf:capacityAllocationUnits="byte * 2^30"/></DiskSection>
  <VirtualSystem ovf:id="vm"><Info/><Name>simple</Name>
    <VirtualHardwareSection><Info/>
      <Item><rasd:ElementName>cpu</rasd:ElementName><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>QTY_CPU</rasd:VirtualQuantity></Item>
      <Item><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits><rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>QTY_MEM</rasd:VirtualQuantity></Item>
      <Item><rasd:HostResource>ovf:/disk/d1</rasd:HostResource><rasd:InstanceID>3</rasd:InstanceID><rasd:ResourceType>17</rasd:ResourceType></Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>`;
const simple = (cpu = '2', mem = '512') => SIMPLE.replace('QTY_CPU', cpu).replace('QTY_MEM', mem);

describe('OVA archives', () => {
  const dir = tempDir();
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it.each([
    ['ustar', 'sha256', false],
    ['gnu', 'sha1', true],
    ['pax', 'sha512', false],
  ] as const)('reads a %s archive with a %s manifest (CRLF %s)', async (format, manifest, crlf) => {
    const { path: ova, members } = ovaFromDescriptor(path.join(dir, `simple-${format}.ova`), simple(), {
      format,
      manifest,
      crlf,
    });
    const m = await inspectFile(ova);
    expect(m.kind).toBe('ova');
    if (m.kind !== 'ova') return;
    expect(m).toMatchObject({
      name: 'simple',
      cpus: 2,
      memoryMiB: 512,
      resources: { cpus: 2, memoryMiB: 512, diskBytes: 2 * 2 ** 30 },
    });
    expect(m.archive.descriptorFirst).toBe(true);
    expect(m.archive.files.map((f) => [f.name, f.role, f.manifest])).toEqual([
      ['appliance.ovf', 'descriptor', 'verified'],
      ['appliance.mf', 'manifest', 'not-in-manifest'],
      ['disk.vmdk', 'disk', 'verified'],
    ]);
    expect(m.archive.files[2].digest?.algorithm).toBe(manifest);
    expect(m.archive.files[2].size).toBe(members[2].bytes.length);
  });

  describeWithFixtures('built from real descriptors', () => {
    it.each([
      'govmomi__ttylinux-pc_i486-16.1.ovf',
      'govmomi__photon5.ovf',
      'virt-v2v__test-i-ova-two-disks.ovf',
      'cot__csr1000v_2017.ovf',
    ])('%s', async (name) => {
      const descriptor = fixture(name);
      const { path: ova } = ovaFromDescriptor(path.join(dir, `${name}.ova`), descriptor, { manifest: 'sha1' });
      const m = await inspectFile(ova);
      const direct = describeOvf(await parseOvf(descriptor));
      expect(m).toMatchObject({ name: direct.name, cpus: direct.cpus, memoryMiB: direct.memoryMiB, version: direct.version });
      if (m.kind === 'ova') expect(m.archive.files.every((f) => f.manifest !== 'no-manifest')).toBe(true);
    });

    it('accepts an archive whose descriptor is not first, as VirtualBox wrote one', async () => {
      const descriptor = fixture('vm-import-controller__ubuntu.2.0.ovf');
      const disk = { name: 'ubuntu.2.0-disk1.vmdk', bytes: filler(10_000, 3) };
      const ovf = {
        name: 'ubuntu.2.0.ovf',
        bytes: Buffer.from(descriptor.replace(/ovf:size="\d+"/, `ovf:size="${disk.bytes.length}"`)),
      };
      const mf = {
        name: 'ubuntu.2.0.mf',
        bytes: Buffer.from(
          [manifestLine('sha256', ovf.name, ovf.bytes), manifestLine('sha256', disk.name, disk.bytes)].join('\n'),
        ),
      };
      const ova = tarArchive(path.join(dir, 'disk-first.ova'), [disk, ovf, mf]);
      const m = await inspectFile(ova);
      expect(m).toMatchObject({ kind: 'ova', name: 'ubuntu', archive: { descriptorFirst: false } });
      if (m.kind === 'ova') expect(m.archive.files.find((f) => f.name === disk.name)?.manifest).toBe('verified');
      expect(await peekDescriptor(async (s, e) => fs.readFileSync(ova).subarray(s, e), fs.statSync(ova).size)).toBeUndefined();
    });
  });

  it('finds the descriptor of a well-formed OVA with two reads', async () => {
    const { path: ova } = ovaFromDescriptor(path.join(dir, 'peek.ova'), simple());
    const bytes = fs.readFileSync(ova);
    expect((await peekDescriptor(async (s, e) => bytes.subarray(s, e), bytes.length))?.toString()).toContain(
      '<Name>simple</Name>',
    );
  });

  it('writes and reads tar headers for sizes over 8 GiB and long names', async () => {
    const size = 9 * 2 ** 30 + 7;
    const name = `${'long-name-'.repeat(12)}.vmdk`;
    const extract = tar.extract();
    const seen = new Promise<tar.Header>((resolve) => extract.on('entry', (header) => resolve(header)));
    extract.write(Buffer.concat([entryHeader(name, size), Buffer.alloc(512)]));
    const header = await seen;
    expect(header.size).toBe(size);
    expect(header.name).toBe(name);
    extract.destroy();
  });
});

describe('hostile archives and descriptors end in InvalidImage or ManifestMismatch', () => {
  const dir = tempDir();
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  const disk = { name: 'disk.vmdk', bytes: filler(1, 9) };
  const ovf = { name: 'a.ovf', bytes: Buffer.from(simple()) };

  function gnuTar(name: string, build: (work: string) => string[]): string {
    const work = tempDir('vmhub-hostile-');
    const out = path.join(dir, `${name}.ova`);
    execFileSync('tar', ['-cf', out, '-C', work, ...build(work)]);
    return out;
  }

  const cases: Array<[string, () => string, string, RegExp]> = [
    [
      'path traversal',
      () =>
        gnuTar('traversal', (w) => {
          fs.mkdirSync(path.join(w, 'x'));
          fs.writeFileSync(path.join(w, 'a.ovf'), ovf.bytes);
          return ['-P', 'a.ovf', 'x/../a.ovf'];
        }),
      'InvalidImage',
      /unsafe path|twice/,
    ],
    [
      'an absolute path',
      () =>
        gnuTar('absolute', (w) => {
          fs.writeFileSync(path.join(w, 'a.ovf'), ovf.bytes);
          return ['-P', path.join(w, 'a.ovf')];
        }),
      'InvalidImage',
      /unsafe path/,
    ],
    [
      'a symlink entry',
      () =>
        gnuTar('symlink', (w) => {
          fs.writeFileSync(path.join(w, 'a.ovf'), ovf.bytes);
          fs.symlinkSync('/etc/passwd', path.join(w, 'disk.vmdk'));
          return ['a.ovf', 'disk.vmdk'];
        }),
      'InvalidImage',
      /symlink/,
    ],
    [
      'a hard-link entry',
      () =>
        gnuTar('hardlink', (w) => {
          fs.writeFileSync(path.join(w, 'a.ovf'), ovf.bytes);
          fs.linkSync(path.join(w, 'a.ovf'), path.join(w, 'disk.vmdk'));
          return ['a.ovf', 'disk.vmdk'];
        }),
      'InvalidImage',
      /link/,
    ],
    [
      'a directory entry',
      () =>
        gnuTar('dir', (w) => {
          fs.writeFileSync(path.join(w, 'a.ovf'), ovf.bytes);
          fs.mkdirSync(path.join(w, 'sub'));
          return ['a.ovf', 'sub'];
        }),
      'InvalidImage',
      /directory/,
    ],
    [
      'a duplicate name',
      () => {
        const out = tarArchive(path.join(dir, 'dup.ova'), [ovf, disk]);
        const w = tempDir();
        fs.writeFileSync(path.join(w, 'disk.vmdk'), 'x');
        execFileSync('tar', ['-rf', out, '-C', w, 'disk.vmdk']);
        return out;
      },
      'InvalidImage',
      /twice/,
    ],
    [
      'a manifest mismatch',
      () =>
        tarArchive(path.join(dir, 'mismatch.ova'), [
          ovf,
          { name: 'a.mf', bytes: Buffer.from(manifestLine('sha256', 'disk.vmdk', Buffer.from('other'))) },
          disk,
        ]),
      'ManifestMismatch',
      /disk\.vmdk/,
    ],
    [
      'a manifest naming a missing file',
      () =>
        tarArchive(path.join(dir, 'mf-missing.ova'), [
          ovf,
          { name: 'a.mf', bytes: Buffer.from(manifestLine('sha1', 'ghost.vmdk', Buffer.from('x'))) },
          disk,
        ]),
      'ManifestMismatch',
      /ghost/,
    ],
    [
      'a missing referenced file',
      () => tarArchive(path.join(dir, 'missing.ova'), [ovf]),
      'InvalidImage',
      /refers to "disk\.vmdk", which the archive lacks/,
    ],
    [
      'a file of another size than declared',
      () => tarArchive(path.join(dir, 'size.ova'), [ovf, { name: 'disk.vmdk', bytes: filler(10, 2) }]),
      'InvalidImage',
      /10 bytes, the descriptor says 1/,
    ],
    [
      'a truncated archive',
      () => {
        const out = tarArchive(path.join(dir, 'whole.ova'), [
          ovf,
          { name: 'disk.vmdk', bytes: filler(1, 9) },
          { name: 'big.bin', bytes: filler(100_000, 4) },
        ]);
        const t = path.join(dir, 'truncated.ova');
        fs.writeFileSync(t, fs.readFileSync(out).subarray(0, 50_000));
        return t;
      },
      'InvalidImage',
      /truncated/,
    ],
    ['no descriptor at all', () => tarArchive(path.join(dir, 'nodesc.ova'), [disk]), 'InvalidImage', /no \.ovf/],
    [
      'an oversized descriptor',
      () => tarArchive(path.join(dir, 'huge.ova'), [{ name: 'a.ovf', bytes: Buffer.alloc(5 * MiB, 0x20) }]),
      'InvalidImage',
      /larger than/,
    ],
    [
      'a descriptor that is not XML',
      () => tarArchive(path.join(dir, 'notxml.ova'), [{ name: 'a.ovf', bytes: Buffer.from('{"json": true}') }]),
      'InvalidImage',
      /not well-formed XML/,
    ],
    [
      'random bytes',
      () => {
        const f = path.join(dir, 'random.ova');
        fs.writeFileSync(f, filler(10_000, 77));
        return f;
      },
      'InvalidImage',
      /corrupt|no \.ovf|unsafe/,
    ],
    [
      'zero bytes',
      () => {
        const f = path.join(dir, 'zero.ova');
        fs.writeFileSync(f, '');
        return f;
      },
      'InvalidImage',
      /truncated|corrupt|no \.ovf/,
    ],
  ];

  it.each(cases)('%s', async (_name, build, type, message) => {
    const err = await failure(inspectFile(build()));
    expect(err.type).toBe(type);
    expect(err.message).toMatch(message);
  });

  const billionLaughs = `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;">]><Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1">&lol2;</Envelope>`;
  const externalEntity = `<?xml version="1.0"?><!DOCTYPE e [<!ENTITY x SYSTEM "file:///etc/passwd">]><Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1">&x;</Envelope>`;
  it.each([
    ['billion laughs', billionLaughs, /DOCTYPE/],
    ['an external entity', externalEntity, /DOCTYPE/],
    ['not XML', 'hello', /not well-formed/],
    ['another root', '<html xmlns="http://www.w3.org/1999/xhtml"/>', /not an OVF Envelope/],
    ['no virtual system', '<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1"/>', /no VirtualSystem/],
    ['a negative CPU count', simple('-4'), /negative/],
    ['an absurd memory size', simple('2', '999999999999999'), /absurdly large/],
    ['a fractional CPU count', simple('1.5'), /whole number/],
    [
      'prototype keys',
      simple().replace('<Name>simple</Name>', '<Name>simple</Name><__proto__><polluted>yes</polluted></__proto__><constructor/>'),
      undefined,
    ],
  ])('descriptor with %s', async (_name, text, message) => {
    if (message === undefined) {
      const m = describeOvf(await parseOvf(text));
      expect(m.name).toBe('simple');
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      return;
    }
    const err = await failure(Promise.resolve(text).then((t) => describeOvf(parseOvf(t))));
    expect(err.type).toBe('InvalidImage');
    expect(err.message).toMatch(message);
  });
});

describe('manifests', () => {
  it('reads all three line shapes, with CRLF', () => {
    const text =
      'SHA256(a.ovf)= ' +
      'a'.repeat(64) +
      '\r\nSHA1 (b.vmdk)= ' +
      'B'.repeat(40) +
      '\r\nSHA512 (c.iso) = ' +
      'c'.repeat(128) +
      '\r\n';
    expect(parseManifest(text)).toEqual([
      { file: 'a.ovf', algorithm: 'sha256', digest: 'a'.repeat(64) },
      { file: 'b.vmdk', algorithm: 'sha1', digest: 'b'.repeat(40) },
      { file: 'c.iso', algorithm: 'sha512', digest: 'c'.repeat(128) },
    ]);
  });

  describeWithFixtures('from real exporters', () => {
    it.each([
      ['govmomi__ttylinux-pc_i486-16.1.mf', 2, 'sha1'],
      ['vm-import-controller__ubuntu.2.0.mf', 2, 'sha256'],
      ['cot__input.mf', 4, 'sha1'],
    ])('%s', (name, entries, algorithm) => {
      const m = parseManifest(fixture(name));
      expect(m).toHaveLength(entries);
      expect(m.every((e) => e.algorithm === algorithm)).toBe(true);
    });
  });

  it.each([
    ['MD5(a)= ' + 'a'.repeat(32), /not "ALGORITHM/],
    ['SHA256(a)= abc', /64 hex digits/],
    ['SHA1(a)= ' + 'a'.repeat(40) + '\nSHA1(a)= ' + 'b'.repeat(40), /twice/],
  ])('rejects %j', (text, message) => {
    expect(() => parseManifest(text)).toThrow(message);
  });
});

describe('ISO 9660', () => {
  const dir = tempDir();
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('reads the volume descriptor of a bootable ISO made by xorriso', async () => {
    const iso = isoImage(path.join(dir, 'boot.iso'), {
      volumeId: 'VMHUB_TEST',
      publisher: 'VMHUB PROJECT',
      application: 'VMHUB TESTS',
      bootable: true,
    });
    const m = await inspectFile(iso, 'iso');
    expect(m).toMatchObject({
      kind: 'iso',
      volumeId: 'VMHUB_TEST',
      publisher: 'VMHUB PROJECT',
      application: 'VMHUB TESTS',
      bootable: true,
      joliet: true,
    });
    if (m.kind === 'iso') {
      expect(m.volumeSizeBytes).toBe(fs.statSync(iso).size);
      expect(m.createdAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d\d[+-]\d\d:\d\d$/);
    }
  });

  it('tells a plain data ISO from a bootable one', async () => {
    const iso = isoImage(path.join(dir, 'data.iso'), { volumeId: 'DATA', extraBytes: 300_000 });
    expect(await inspectFile(iso, 'iso')).toMatchObject({ volumeId: 'DATA', bootable: false, joliet: true });
  });

  it.each([
    ['too short', Buffer.alloc(1000), /too short/],
    ['random bytes', filler(40 * 2048, 3), /no ISO 9660 primary volume descriptor/],
    ['zero bytes', Buffer.alloc(0), /too short/],
  ])('rejects %s', (_name, bytes, message) => {
    try {
      parseIso(bytes);
      throw new Error('accepted');
    } catch (err) {
      expect((err as VmhubError).type).toBe('InvalidImage');
      expect((err as Error).message).toMatch(message);
    }
  });
});
