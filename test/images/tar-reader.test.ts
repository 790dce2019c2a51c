import fs from 'node:fs';
import path from 'node:path';
import { VmhubError } from '../../src/shared/errors';
import { createInspector } from '../../src/images/inspect';
import { MAX_MEMBERS, TarReader, type TarEntry } from '../../src/images/tar-reader';
import { END_OF_ARCHIVE, entryHeader } from '../../src/images/tar-header';
import { archive, filler, ovaFromDescriptor, tarArchive, tempDir, type Member } from './build';

/** Every member the reader reports, with its bytes, feeding the archive in chunks of the given size. */
async function members(bytes: Buffer, chunk = 64 * 1024): Promise<Array<TarEntry & { bytes: Buffer }>> {
  const found: Array<TarEntry & { bytes: Buffer }> = [];
  const reader = new TarReader((entry) => {
    const parts: Buffer[] = [];
    return { update: (c) => parts.push(Buffer.from(c)), end: () => void found.push({ ...entry, bytes: Buffer.concat(parts) }) };
  });
  for (let at = 0; at < bytes.length; at += chunk) await reader.write(bytes.subarray(at, at + chunk));
  reader.finish();
  return found;
}

async function refusal(p: Promise<unknown>): Promise<VmhubError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(VmhubError);
  expect((err as VmhubError).type).toBe('InvalidImage');
  return err as VmhubError;
}

const DESCRIPTOR = `<?xml version="1.0"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
  <References><File ovf:href="disk.vmdk" ovf:id="f1"/></References>
  <VirtualSystem ovf:id="vm"><Info/><Name>tiny</Name></VirtualSystem>
</Envelope>`;

describe('tar reader', () => {
  const dir = tempDir();
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  const long = `${'a-rather-long-directory-name/'.repeat(5)}${'long-file-name-'.repeat(8)}.vmdk`;
  const sample: Member[] = [
    { name: 'a.ovf', bytes: Buffer.from('descriptor') },
    { name: long, bytes: filler(1500, 2) },
    { name: 'empty.bin', bytes: Buffer.alloc(0) },
    { name: 'block.bin', bytes: filler(512, 3) },
  ];

  it.each(['ustar', 'gnu', 'pax'] as const)('reads what GNU tar writes in %s format, long names included', async (format) => {
    const members_ = format === 'ustar' ? sample.filter((m) => m.name !== long) : sample;
    const bytes = fs.readFileSync(tarArchive(path.join(dir, `${format}.tar`), members_, format));
    const found = await members(bytes);
    expect(found.map((m) => [m.name, m.type, m.size])).toEqual(members_.map((m) => [m.name, 'file', m.bytes.length]));
    found.forEach((m, i) => expect(m.bytes.equals(members_[i].bytes)).toBe(true));
  });

  it('reads the same members whatever the chunk boundaries', async () => {
    const bytes = archive(sample);
    const whole = await members(bytes, bytes.length);
    for (const chunk of [1, 7, 511, 512, 513, 4096]) expect(await members(bytes, chunk)).toEqual(whole);
  });

  it('reads a size over 8 GiB from a PAX header without the bytes behind it', async () => {
    const size = 9 * 2 ** 30 + 7;
    const seen: TarEntry[] = [];
    const reader = new TarReader((entry) => {
      seen.push(entry);
      return { update: () => undefined, end: () => undefined };
    });
    await reader.write(entryHeader('huge.vmdk', size));
    expect(seen).toEqual([{ name: 'huge.vmdk', size, type: 'file' }]);
    expect(() => reader.finish()).toThrow(/truncated inside "huge\.vmdk"/);
  });

  it('reads a GNU base-256 size', async () => {
    const header = entryHeader('b.bin', 3);
    header.fill(0, 124, 136);
    header[124] = 0x80;
    header[135] = 3;
    rechecksum(header);
    const found = await members(Buffer.concat([header, Buffer.from('abc'), Buffer.alloc(509), END_OF_ARCHIVE]));
    expect(found.map((m) => m.bytes.toString())).toEqual(['abc']);
  });

  it('stops at the end-of-archive marker: what follows is not parsed', async () => {
    const bytes = Buffer.concat([archive(sample), filler(10_000, 9)]);
    expect((await members(bytes)).map((m) => m.name)).toEqual(sample.map((m) => m.name));
  });

  it('accepts an archive that ends at a member boundary without its marker', async () => {
    expect(await members(archive(sample, false))).toHaveLength(sample.length);
  });

  it(`reads ${MAX_MEMBERS} members and refuses one more`, async () => {
    const many = (n: number) => archive(Array.from({ length: n }, (_, i) => ({ name: `m${i}`, bytes: Buffer.alloc(0) })));
    expect(await members(many(MAX_MEMBERS))).toHaveLength(MAX_MEMBERS);
    expect((await refusal(members(many(MAX_MEMBERS + 1)))).message).toMatch(/more than 10000 members/);
  });

  it('counts extended headers as members and bounds global ones, so headers alone cannot make work grow', async () => {
    const record = (value: string) => {
      const body = ` comment=${value}\n`;
      let length = body.length + 1;
      while (`${length}${body}`.length !== length) length++;
      return `${length}${body}`;
    };
    const globals = Array.from({ length: 20 }, () => paxHeader(record('x'.repeat(4000)), 'g'));
    expect((await refusal(members(Buffer.concat([...globals, archive(sample)])))).message).toMatch(/global extended headers/);
    const headersOnly = Array.from({ length: MAX_MEMBERS + 1 }, () => paxHeader(record('y'), 'x'));
    expect((await refusal(members(Buffer.concat(headersOnly)))).message).toMatch(/more than 10000 members/);
  });

  const corruptions: Array<[string, () => Buffer, RegExp]> = [
    ['a garbage header after the first members', () => Buffer.concat([archive(sample, false), filler(2048, 5)]), /corrupt/],
    [
      'a header with a wrong checksum',
      () => {
        const bytes = archive(sample);
        bytes[0] ^= 1;
        return bytes;
      },
      /fails its checksum/,
    ],
    [
      'a negative base-256 size',
      () => {
        const header = entryHeader('n.bin', 0);
        header.fill(0xff, 124, 136);
        rechecksum(header);
        return Buffer.concat([header, END_OF_ARCHIVE]);
      },
      /negative/,
    ],
    [
      'a size field that is not octal',
      () => {
        const header = entryHeader('n.bin', 0);
        header.write('99999999999\0', 124, 'latin1');
        rechecksum(header);
        return header;
      },
      /not octal/,
    ],
    [
      'a member after a lone zero block',
      () => Buffer.concat([archive(sample.slice(0, 1), false), Buffer.alloc(512), archive(sample.slice(1))]),
      /lone zero block/,
    ],
    ['a malformed PAX record', () => Buffer.concat([paxHeader('12 path=x\n'), archive(sample)]), /malformed PAX/],
    ['a PAX size that is not a number', () => Buffer.concat([paxHeader('10 size=x\n'), archive(sample)]), /PAX size/],
    ['an extended header of 2 MiB', () => extendedHeader(2 * 2 ** 20), /extended header larger/],
    ['a header that is not ustar', () => Buffer.concat([Buffer.from('not a tar header'), Buffer.alloc(496, 1)]), /corrupt/],
    ['an archive cut inside a member', () => archive(sample).subarray(0, 3000), /truncated inside/],
    ['an archive cut inside a header', () => archive(sample).subarray(0, 100), /truncated/],
  ];

  it.each(corruptions)('refuses %s with InvalidImage', async (_name, build, message) => {
    expect((await refusal(members(build()))).message).toMatch(message);
  });

  it('reports a failure once, the same on every later call', async () => {
    const reader = new TarReader(() => ({ update: () => undefined, end: () => undefined }));
    const first = await refusal(reader.write(filler(1024, 4)));
    expect(await refusal(reader.write(archive(sample)))).toBe(first);
    expect(() => reader.finish()).toThrow(first);
  });

  it('an OVA inspector turns a garbage header after the first members into InvalidImage', async () => {
    const { path: ova } = ovaFromDescriptor(path.join(dir, 'garbage.ova'), DESCRIPTOR);
    const good = fs.readFileSync(ova);
    const bytes = Buffer.concat([good.subarray(0, 512 * 4), filler(4096, 8)]);
    const inspector = createInspector('ova');
    const err = await refusal(
      (async () => {
        for (let at = 0; at < bytes.length; at += 1024) await inspector.write(bytes.subarray(at, at + 1024));
        return inspector.finish();
      })(),
    );
    expect(err.message).toMatch(/corrupt/);
  });
});

function rechecksum(header: Buffer): void {
  header.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of header) sum += b;
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
}

function paxHeader(records: string, flag: 'x' | 'g' = 'x'): Buffer {
  const header = entryHeader('PaxHeader', records.length);
  header[156] = flag.charCodeAt(0);
  rechecksum(header);
  const body = Buffer.alloc(Math.ceil(records.length / 512) * 512);
  body.write(records, 'latin1');
  return Buffer.concat([header, body]);
}

function extendedHeader(size: number): Buffer {
  const header = entryHeader('PaxHeader', size);
  header[156] = 'x'.charCodeAt(0);
  rechecksum(header);
  return header;
}
