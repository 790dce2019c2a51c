import { VmhubError } from '../../src/shared/errors';
import { createInspector, MAX_METADATA_BYTES, type ImageMetadata } from '../../src/images/inspect';
import { checkEntryName } from '../../src/images/ova';
import { MAX_FILES, parseOvf, type OvfEnvelope } from '../../src/images/ovf/envelope';
import { describeOvf } from '../../src/images/ovf/metadata';
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
