import type { ImageMetadata } from '../../src/images/inspect';
import { parseOvf } from '../../src/images/ovf/envelope';
import { describeOvf, MAX_RECORDED_PROPERTIES, MAX_RECORDED_VALUE } from '../../src/images/ovf/metadata';
import { diffMetadata } from '../../src/images/version-diff';
import { applianceDescriptor as descriptor, type ApplianceShape as Shape } from './build';

/** The metadata the catalog would keep of an OVA with that descriptor (the OVA's archive facts play no part). */
function metadata(s: Shape = {}): ImageMetadata {
  return { ...describeOvf(parseOvf(descriptor(s))), kind: 'ova' } as unknown as ImageMetadata;
}

const prop = (key: string, attrs = '') => `<Property ovf:key="${key}" ovf:type="string" ${attrs}/>`;

describe('OVF properties kept at publish', () => {
  it('keeps each property by its qualified id with its default and whether a deployer may set it; never a password', () => {
    const m = describeOvf(
      parseOvf(
        descriptor({
          properties:
            prop('ntp', 'ovf:userConfigurable="true" ovf:value="pool.ntp.org"') +
            prop('mode') +
            prop('secret', 'ovf:password="true" ovf:userConfigurable="true" ovf:value="hunter2"'),
        }),
      ),
    );
    expect(m.ovfProperties).toEqual([
      { id: 'app.ntp.vm', type: 'string', userConfigurable: true, value: 'pool.ntp.org' },
      { id: 'app.mode.vm', type: 'string', userConfigurable: false },
      { id: 'app.secret.vm', type: 'string', userConfigurable: true, password: true },
    ]);
    expect(JSON.stringify(m)).not.toContain('hunter2');
    expect(m.ovfPropertiesOmitted).toBeUndefined();
  });

  it('bounds the count and keeps a long default as its digest and length', () => {
    const long = 'x'.repeat(MAX_RECORDED_VALUE + 1);
    const many = Array.from({ length: MAX_RECORDED_PROPERTIES + 3 }, (_, i) => prop(`p${i}`)).join('');
    const m = describeOvf(parseOvf(descriptor({ properties: prop('long', `ovf:value="${long}"`) + many })));
    expect(m.ovfProperties).toHaveLength(MAX_RECORDED_PROPERTIES);
    expect(m.ovfPropertiesOmitted).toBe(4);
    expect(m.ovfProperties![0]).toEqual({
      id: 'app.long.vm',
      type: 'string',
      userConfigurable: false,
      valueSha256: expect.stringMatching(/^[0-9a-f]{64}$/),
      valueLength: MAX_RECORDED_VALUE + 1,
    });
  });
});

describe('diffMetadata', () => {
  it('finds nothing between a version and itself', () => {
    const m = metadata({ properties: prop('ntp', 'ovf:value="a"') });
    expect(diffMetadata(m, m)).toEqual({
      hardware: [],
      hardwareSame: 6,
      disks: { added: [], removed: [], resized: [], same: 1 },
      networks: { added: [], removed: [], same: 1 },
      properties: { added: [], removed: [], changed: [], same: 1 },
    });
  });

  it.each<[string, Shape, Shape, object]>([
    ['CPUs', { cpus: 2 }, { cpus: 4 }, { field: 'cpus', a: 2, b: 4 }],
    ['memory', { memoryMiB: 2048 }, { memoryMiB: 4096 }, { field: 'memoryMiB', a: 2048, b: 4096 }],
    [
      'the virtual system type',
      { family: 'vmx-15' },
      { family: 'vmx-19' },
      { field: 'virtualSystemType', a: 'vmx-15', b: 'vmx-19' },
    ],
    ['the firmware', {}, { firmware: 'efi' }, { field: 'firmware', a: 'bios', b: 'efi' }],
  ])('tells a change of %s', (_what, a, b, change) => {
    const d = diffMetadata(metadata(a), metadata(b));
    expect(d.hardware).toEqual([change]);
    expect(d.hardwareSame).toBe(5);
  });

  it('tells disks added, removed and resized, by disk id', () => {
    const a = metadata({
      disks: [
        ['d1', '1024'],
        ['d2', '2048'],
      ],
    });
    const b = metadata({
      disks: [
        ['d1', '4096'],
        ['d3', '${size}'],
      ],
    });
    expect(diffMetadata(a, b).disks).toEqual({
      added: [{ diskId: 'd3', capacity: '${size}' }],
      removed: [{ diskId: 'd2', capacity: '2048' }],
      resized: [{ diskId: 'd1', a: '1024', b: '4096' }],
      same: 0,
    });
  });

  it('tells networks added and removed, by name', () => {
    const d = diffMetadata(metadata({ networks: ['VM Network', 'mgmt'] }), metadata({ networks: ['VM Network', 'storage'] }));
    expect(d.networks).toEqual({ added: ['storage'], removed: ['mgmt'], same: 1 });
  });

  it('tells properties added, removed and whose default or configurability changed', () => {
    const a = metadata({ properties: prop('ntp', 'ovf:value="a"') + prop('old') + prop('mode') + prop('same', 'ovf:value="s"') });
    const b = metadata({
      properties:
        prop('ntp', 'ovf:value="b"') +
        prop('new', 'ovf:value="n"') +
        prop('mode', 'ovf:userConfigurable="true"') +
        prop('same', 'ovf:value="s"'),
    });
    expect(diffMetadata(a, b).properties).toEqual({
      added: [{ id: 'app.new.vm', default: 'n', userConfigurable: false }],
      removed: [{ id: 'app.old.vm', userConfigurable: false }],
      changed: [
        {
          id: 'app.ntp.vm',
          a: { id: 'app.ntp.vm', default: 'a', userConfigurable: false },
          b: { id: 'app.ntp.vm', default: 'b', userConfigurable: false },
        },
        {
          id: 'app.mode.vm',
          a: { id: 'app.mode.vm', userConfigurable: false },
          b: { id: 'app.mode.vm', userConfigurable: true },
        },
      ],
      same: 1,
    });
  });

  it('says the properties were not recorded for a record published before they were kept', () => {
    const old = metadata();
    delete (old as { ovfProperties?: unknown }).ovfProperties;
    expect(diffMetadata(old, metadata()).properties).toEqual({ notRecorded: ['a'] });
    expect(diffMetadata(metadata(), undefined).properties).toEqual({ notRecorded: ['b'] });
  });

  it('compares an ISO with an OVA as an image without hardware, disks, networks or properties', () => {
    const iso: ImageMetadata = { kind: 'iso', volumeId: 'X', volumeSizeBytes: 2048, bootable: false, joliet: false, udf: false };
    const d = diffMetadata(iso, metadata({ properties: prop('p') }));
    expect(d.hardware.map((c) => [c.field, c.a])).toEqual([
      ['virtualSystemType', undefined],
      ['firmware', undefined],
      ['cpus', undefined],
      ['memoryMiB', undefined],
    ]);
    expect(d.disks.added).toHaveLength(1);
    expect(d.networks.added).toEqual(['VM Network']);
    expect(d.properties).toMatchObject({ added: [{ id: 'app.p.vm' }], removed: [] });
  });
});
