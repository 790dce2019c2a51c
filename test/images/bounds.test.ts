import { VmhubError } from '../../src/shared/errors';
import { createInspector, MAX_METADATA_BYTES, type ImageMetadata } from '../../src/images/inspect';
import { checkEntryName } from '../../src/images/ova';
import { byteMultiplier, bytes } from '../../src/images/ovf/cim';
import { parseDescriptor } from '../../src/images/ovf/descriptor';
import * as envelopeModule from '../../src/images/ovf/envelope';
import { MAX_FILES, parseOvf, type OvfEnvelope } from '../../src/images/ovf/envelope';
import { describeOvf } from '../../src/images/ovf/metadata';
import { BLOCK, entryHeader } from '../../src/images/tar-header';
import { MAX_NAME_BYTES } from '../../src/images/tar-reader';
import { parseXml, XML_LIMITS } from '../../src/images/xml';
import { hashPool } from '../../src/storage/hashing';
import { archive, filler, manifestLine, type Member } from './build';

/** Hostile names, descriptors and archives: each refused with its type, or bounded by construction. */
async function inspect(bytes: Buffer): Promise<ImageMetadata> {
  const inspector = createInspector('ova');
  for (let at = 0; at < bytes.length; at += 256 * 1024) await inspector.write(bytes.subarray(at, at + 256 * 1024));
  return inspector.finish();
}

async function refusal(p: Promise<unknown> | (() => Promise<unknown>), type = 'InvalidImage'): Promise<VmhubError> {
  const err = await (typeof p === 'function' ? p() : p).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(VmhubError);
  expect((err as VmhubError).type).toBe(type);
  return err as VmhubError;
}

const NS = `xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
  xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"`;

function descriptor(references: string, body = '', options = ''): string {
  return `<?xml version="1.0"?><Envelope ${NS}><References>${references}</References>${options}
  <VirtualSystem ovf:id="vm"><Info/><Name>bounded</Name>${body}</VirtualSystem></Envelope>`;
}

const file = (href: string, id: string) => `<File ovf:href="${href}" ovf:id="${id}"/>`;

describe('member names and file references', () => {
  it.each(['disk.vmdk', 'dir/disk-1.vmdk', 'disk%201.vmdk', 'disk 1.vmdk', 'ünïcødé.vmdk', 'a.b.c', '..a', 'a..'])(
    'accepts %j',
    (name) => {
      expect(() => checkEntryName(name)).not.toThrow();
    },
  );

  it.each([
    ['', /empty/],
    ['/etc/passwd', /absolute/],
    ['../x.vmdk', /\.\. segment/],
    ['a/../../x.vmdk', /\.\. segment/],
    ['./x.vmdk', /\. or \.\. segment/],
    ['a//b.vmdk', /empty, \. or \.\. segment/],
    ['http://evil.example/x.vmdk', /URL/],
    ['https://127.0.0.1/x.vmdk', /URL/],
    ['file:///etc/passwd', /URL/],
    ['C:x.vmdk', /drive/],
    ['c:/x.vmdk', /drive/],
    ['a\\b.vmdk', /backslash/],
    ['x.vmdk?sig=1', /\?/],
    ['x.vmdk#frag', /#/],
    ['a\nb.vmdk', /control/],
    ['%2e%2e/x.vmdk', /percent-encoding hides/],
    ['%2E%2e%2Fx.vmdk', /percent-encoding hides/],
    ['a%2fb.vmdk', /percent-encoding hides/],
    ['a%5cb.vmdk', /percent-encoding hides/],
    ['%252e%252e/x.vmdk', /percent-encoding hides/],
    ['a%00.vmdk', /percent-encoding hides/],
    ['100%.vmdk', /malformed/],
    ['%E0%A4%A.vmdk', /malformed/],
    ['%C0%AE%C0%AE/x.vmdk', /malformed/],
  ])('refuses %j', (name, message) => {
    try {
      checkEntryName(name, 'file reference');
      throw new Error('accepted');
    } catch (err) {
      expect(err).toBeInstanceOf(VmhubError);
      expect((err as VmhubError).type).toBe('InvalidImage');
      expect((err as Error).message).toMatch(message);
      expect((err as Error).message).not.toContain('\n');
    }
  });
});

describe('descriptor bounds', () => {
  it(`accepts ${MAX_FILES} file references and refuses one more`, async () => {
    const refs = (n: number) => Array.from({ length: n }, (_, i) => file(`f${i}.vmdk`, `f${i}`)).join('');
    expect((await parseOvf(descriptor(refs(MAX_FILES)))).files).toHaveLength(MAX_FILES);
    expect((await refusal(async () => parseOvf(descriptor(refs(MAX_FILES + 1))))).message).toMatch(/1001 files, more than 1000/);
  });

  it.each([
    ['the same href twice', file('a.vmdk', 'f1') + file('a.vmdk', 'f2'), /references "a\.vmdk" twice/],
    ['the same id twice', file('a.vmdk', 'f1') + file('b.vmdk', 'f1'), /two files with id "f1"/],
  ])('refuses %s', async (_name, refs, message) => {
    expect((await refusal(async () => parseOvf(descriptor(refs)))).message).toMatch(message);
  });

  /**
   * 6,000 deployment options over 6,000 items: half the items name no option, and each of the
   * others overrides one of them for one option. Evaluating every option must cost a bounded number
   * of item reads per item and option, not one per item for every option.
   */
  const OPTIONS = 6000;
  const ITEMS = 6000;
  const cpu = (id: number, quantity: number, option?: string) =>
    `<Item${option ? ` ovf:configuration="${option}"` : ''}><rasd:InstanceID>${id}</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>${quantity}</rasd:VirtualQuantity></Item>`;
  const wide = descriptor(
    '',
    `<VirtualHardwareSection><Info/>${Array.from({ length: ITEMS / 2 }, (_, i) => cpu(i, 1)).join('')}${Array.from(
      { length: ITEMS / 2 },
      (_, i) => cpu(i, 2, `o${i}`),
    ).join('')}</VirtualHardwareSection>`,
    `<DeploymentOptionSection><Info/>${Array.from(
      { length: OPTIONS },
      (_, i) =>
        `<Configuration ovf:id="o${i}"${i === OPTIONS - 1 ? ' ovf:default="true"' : ''}><Label>option ${i}</Label></Configuration>`,
    ).join('')}</DeploymentOptionSection>`,
  );

  it(`evaluates ${OPTIONS} deployment options × ${ITEMS} items with work linear in the descriptor`, async () => {
    const envelope = await parseOvf(wide);
    let reads = 0;
    const counted: OvfEnvelope = {
      ...envelope,
      virtualSystems: envelope.virtualSystems.map((vs) => ({
        ...vs,
        hardware: {
          ...vs.hardware,
          items: vs.hardware.items.map(
            (item) =>
              new Proxy(item, {
                get: (target, key, receiver) => {
                  reads++;
                  return Reflect.get(target, key, receiver) as unknown;
                },
              }),
          ),
        },
      })),
    };
    const m = describeOvf(counted);
    expect(m.deploymentOptions).toHaveLength(OPTIONS);
    expect(m.deploymentOptions[0].resources.cpus).toBe(ITEMS / 2 + 1);
    expect(m.deploymentOptions[ITEMS / 2 - 1].resources.cpus).toBe(ITEMS / 2 + 1);
    expect(m.deploymentOptions[ITEMS / 2].resources.cpus).toBe(ITEMS / 2);
    expect(m.cpus).toBe(ITEMS / 2);
    expect(reads).toBeLessThan(50 * (OPTIONS + ITEMS));
  });

  it('refuses, as InvalidImage, an OVA whose metadata would exceed 512 KiB (those 6,000 options)', async () => {
    const err = await refusal(inspect(archive([{ name: 'wide.ovf', bytes: Buffer.from(wide) }])));
    expect(err.message).toMatch(new RegExp(`more than the ${MAX_METADATA_BYTES} accepted`));
  });

  it('refuses, as InvalidImage, an OVA of 2,000 long-named members: its metadata would exceed 512 KiB', async () => {
    const members: Member[] = [{ name: 'a.ovf', bytes: Buffer.from(descriptor('')) }];
    for (let i = 0; i < 2000; i++) members.push({ name: `${'x'.repeat(180)}-${i}.bin`, bytes: Buffer.alloc(1) });
    expect((await refusal(inspect(archive(members)))).message).toMatch(/metadata is \d+ bytes serialized/);
  });
});

describe('the manifest is the descriptor’s own, <stem>.mf', () => {
  const disk = { name: 'disk.vmdk', bytes: filler(3000, 4) };
  const ovf = { name: 'a.ovf', bytes: Buffer.from(descriptor(file('disk.vmdk', 'f1'))) };
  const manifest = (name: string, bytes = disk.bytes) => ({
    name,
    bytes: Buffer.from(manifestLine('sha256', 'disk.vmdk', bytes)),
  });

  it('ignores another .mf member, even one that disagrees with the files', async () => {
    const m = await inspect(archive([ovf, manifest('other.mf', Buffer.from('x')), disk]));
    if (m.kind !== 'ova') throw new Error('not an OVA');
    expect(m.archive.manifest).toBeUndefined();
    expect(m.archive.files.map((f) => [f.name, f.role, f.manifest])).toEqual([
      ['a.ovf', 'descriptor', 'no-manifest'],
      ['other.mf', 'extra', 'no-manifest'],
      ['disk.vmdk', 'file', 'no-manifest'],
    ]);
  });

  it('finds its manifest before the descriptor, among other .mf members', async () => {
    const m = await inspect(archive([{ name: 'z.mf', bytes: Buffer.from('not a manifest') }, manifest('a.MF'), ovf, disk]));
    if (m.kind !== 'ova') throw new Error('not an OVA');
    expect(m.archive.manifest).toBe('a.MF');
    expect(m.archive.files.find((f) => f.name === 'disk.vmdk')?.manifest).toBe('verified');
  });

  it('checks a manifest found before the descriptor', async () => {
    const err = await refusal(inspect(archive([manifest('a.mf', Buffer.from('x')), ovf, disk])), 'ManifestMismatch');
    expect(err.message).toMatch(/disk\.vmdk/);
  });

  it('bounds the .mf members held before the descriptor to 1 MiB together', async () => {
    const big = (name: string) => ({ name, bytes: Buffer.alloc(600 * 1024, 0x20) });
    expect((await refusal(inspect(archive([big('x.mf'), big('y.mf'), ovf, disk])))).message).toMatch(/larger than 1048576 bytes/);
  });
});

describe('XML limits, checked while the descriptor is read', () => {
  const many = (n: number, make: (i: number) => string) => Array.from({ length: n }, (_, i) => make(i)).join('');
  const root = (body: string) => `<r>${body}</r>`;
  /** Not XML at all: a parse that read this far would fail as not well-formed, not on a limit. */
  const GARBAGE = '<<<&&& not xml';

  it.each([
    ['elements', root(many(XML_LIMITS.elements - 1, () => '<a/>')), root(many(XML_LIMITS.elements, () => '<a/>') + GARBAGE)],
    [
      'attributesPerElement',
      root(`<a ${many(XML_LIMITS.attributesPerElement, (i) => ` a${i}=""`)}/>`),
      root(`<a ${many(XML_LIMITS.attributesPerElement + 1, (i) => ` a${i}=""`)} ${GARBAGE}`),
    ],
    [
      'attributes',
      root(many(XML_LIMITS.attributes / 200, (i) => `<a${i} ${many(200, (j) => ` b${j}=""`)}/>`)),
      root(many(XML_LIMITS.attributes / 200, (i) => `<a${i} ${many(200, (j) => ` b${j}=""`)}/>`) + `<z c=""${GARBAGE}`),
    ],
    [
      'namespaceDeclarations',
      root(many(XML_LIMITS.namespaceDeclarations, (i) => `<a xmlns:p${i}="urn:${i}"/>`)),
      root(many(XML_LIMITS.namespaceDeclarations + 1, (i) => `<a xmlns:p${i}="urn:${i}"/>`) + GARBAGE),
    ],
    [
      'depth',
      many(XML_LIMITS.depth, () => '<a>') + many(XML_LIMITS.depth, () => '</a>'),
      many(XML_LIMITS.depth + 1, () => '<a>') + GARBAGE,
    ],
  ] as const)('%s: accepts a descriptor at the limit, and stops at the first element past it', (limit, within, past) => {
    expect(parseXml(within).local).toMatch(/^[ra]$/);
    try {
      parseXml(past);
      throw new Error('accepted');
    } catch (err) {
      expect(err).toBeInstanceOf(VmhubError);
      expect((err as VmhubError).type).toBe('InvalidImage');
      // The limit, not the garbage after it: the parse ended where the limit was passed.
      expect((err as Error).message).toContain(`(${limit}: ${XML_LIMITS[limit]})`);
    }
  });

  it('resolves namespaces by URI, never by prefix, and refuses an unbound prefix', () => {
    const el = parseXml(
      '<x:r xmlns:x="urn:a" xmlns:y=" urn:b " y:k="1" k="2" xml:lang="en"><x:c>  t <![CDATA[u]]> </x:c><c xmlns="urn:c"/></x:r>',
    );
    expect([el.ns, el.local]).toEqual(['urn:a', 'r']);
    expect(el.attrs).toEqual([
      { ns: 'urn:b', local: 'k', value: '1' },
      { ns: '', local: 'k', value: '2' },
      { ns: 'http://www.w3.org/XML/1998/namespace', local: 'lang', value: 'en' },
    ]);
    expect(el.children.map((c) => [c.ns, c.local, c.text])).toEqual([
      ['urn:a', 'c', 't u'],
      ['urn:c', 'c', ''],
    ]);
    expect(() => parseXml('<r><z:c/></r>')).toThrow(/unbound namespace prefix "z"/);
    expect(() => parseXml('<r/><r/>')).toThrow(VmhubError);
  });

  it('refuses the 150,000-attribute descriptor of issue 21 at its 257th attribute, naming the limit', async () => {
    const text = `<Envelope ${NS}><VirtualSystem ovf:id="vm" ${many(150_000, (i) => ` a${i}=""`)}/></Envelope>`;
    const err = await refusal(inspect(archive([{ name: 'wide.ovf', bytes: Buffer.from(text) }])));
    expect(err.message).toBe(
      `OVF descriptor exceeds the XML limit on attributes on one element (attributesPerElement: ${XML_LIMITS.attributesPerElement})`,
    );
  });

  it('parses a descriptor once per content: a second parse of the same bytes, even of refused ones, is served from the cache', () => {
    const parse = jest.spyOn(envelopeModule, 'parseOvf');
    try {
      const good = Buffer.from(descriptor(file('once.vmdk', 'f1')));
      const bad = Buffer.from(descriptor(file('once.vmdk', 'f1') + file('once.vmdk', 'f2')));
      expect(parseDescriptor(good)).toBe(parseDescriptor(Buffer.from(good)));
      for (let i = 0; i < 2; i++) expect(() => parseDescriptor(bad)).toThrow(/references "once\.vmdk" twice/);
      expect(parse).toHaveBeenCalledTimes(2);
    } finally {
      parse.mockRestore();
    }
  });

  it('parses on a hashing thread: the envelope, or the refusal as a typed InvalidImage', async () => {
    const envelope = await hashPool().descriptor(Buffer.from(descriptor(file('t.vmdk', 'f1'))));
    expect(envelope.files.map((f) => f.href)).toEqual(['t.vmdk']);
    const deep = `<Envelope ${NS}>${'<a>'.repeat(XML_LIMITS.depth)}</Envelope>`;
    const err = await refusal(hashPool().descriptor(Buffer.from(deep)));
    expect(err.message).toMatch(/\(depth: 64\)/);
  });
});

describe('the small ones', () => {
  /** A GNU long-name header (`././@LongLink`, type L) carrying `name`, then the member's own header. */
  function gnuLongName(name: string): Buffer {
    const data = Buffer.from(`${name}\0`);
    const head = entryHeader('././@LongLink', data.length);
    head[156] = 'L'.charCodeAt(0);
    head.write('        ', 148, 'latin1');
    let sum = 0;
    for (const b of head) sum += b;
    head.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
    return Buffer.concat([head, data, Buffer.alloc(BLOCK - (data.length % BLOCK)), entryHeader('short', 0)]);
  }

  it(`refuses a member name over ${MAX_NAME_BYTES} bytes, in a PAX or a GNU header, and accepts one of ${MAX_NAME_BYTES}`, async () => {
    const named = (length: number) => `${'d/'.repeat((length - 8) / 2)}long.bin`;
    expect(named(MAX_NAME_BYTES)).toHaveLength(MAX_NAME_BYTES);
    const ok = await refusal(inspect(archive([{ name: named(MAX_NAME_BYTES), bytes: Buffer.alloc(1) }])));
    expect(ok.message).toBe('archive holds no .ovf descriptor');
    const pax = await refusal(inspect(archive([{ name: named(MAX_NAME_BYTES + 2), bytes: Buffer.alloc(1) }])));
    expect(pax.message).toMatch(/member name longer than 4096 bytes/);
    const gnu = await refusal(inspect(Buffer.concat([gnuLongName(named(MAX_NAME_BYTES + 2)), Buffer.alloc(2 * BLOCK)])));
    expect(gnu.message).toMatch(/member name longer than 4096 bytes/);
  });

  it.each(['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'byte*2^99999', 'byte*0^3'])(
    'refuses the units %j: no NaN or infinite size slips past the capacity check',
    (units) => {
      expect(byteMultiplier(units)).toBeUndefined();
      for (const n of ['0', '1']) expect(() => bytes(n, units, 'capacity of disk d')).toThrow(VmhubError);
    },
  );

  it('refuses a disk whose capacity units are "__proto__", where the capacity check would have seen NaN', async () => {
    const disk = `<DiskSection><Info/><Disk ovf:diskId="d" ovf:capacity="1" ovf:capacityAllocationUnits="__proto__"/></DiskSection>`;
    const text = `<?xml version="1.0"?><Envelope ${NS}><References/>${disk}<VirtualSystem ovf:id="vm"><Info/></VirtualSystem></Envelope>`;
    expect((await refusal(async () => parseOvf(text))).message).toMatch(/unknown units "__proto__"/);
    expect(bytes('2', 'byte * 2^30', 'memory')).toBe(2 * 2 ** 30);
  });
});
