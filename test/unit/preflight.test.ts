import path from 'node:path';
import { parseOvf } from '../../src/images/ovf/envelope';
import { describeOvf } from '../../src/images/ovf/metadata';
import { loadTopology } from '../../src/topology/topology';
import { fixture } from '../images/fixtures';
import { mappedNetworks } from '../../src/sddc/library-import';
import { descriptorFacts, preflightRefusals, type SddcFacts, type VersionFacts } from '../../src/sddc/preflight';
import { mappedTarget } from '../../src/cli/sddc';
import { parseTarget } from '../../src/shared/sddc-target';
import { withNetworkMap } from '../../src/shared/target-kinds/content-library';
import type { ContentLibraryTarget } from '../../src/shared/target-kinds/kind';
import type { ImageMetadata } from '../../src/images/inspect';
import { VmhubError } from '../../src/shared/errors';

const photon: VersionFacts = { ref: 'photon@5.0.1', networks: ['prod'], hardwareVersions: ['vmx-15'], cpus: 2, memoryMiB: 2048 };
const east1: SddcFacts = {
  sddc: 'east-1',
  networks: ['VM Network', 'DC0_DVPG0'],
  hardwareVersions: ['vmx-13', 'vmx-14', 'vmx-15'],
  largestHost: { cpuThreads: 2, memoryMiB: 4095 },
};

describe('preflightRefusals', () => {
  it('refuses a network the SDDC lacks, and says how to map it', () => {
    expect(preflightRefusals(photon, east1)).toEqual([
      'network "prod" of photon@5.0.1 does not exist in east-1 (networks: VM Network, DC0_DVPG0); map it with vmhub sddc update east-1 --network-map prod=<network>',
    ]);
  });

  it.each<[string, Partial<VersionFacts>, Partial<SddcFacts>, Record<string, string>, RegExp[]]>([
    ['a mapped network that exists', {}, {}, { prod: 'VM Network' }, []],
    ['a network of the same name', { networks: ['DC0_DVPG0'] }, {}, {}, []],
    ['no network at all', { networks: [] }, { networks: [] }, {}, []],
    [
      'a mapping to a network that is gone',
      {},
      {},
      { prod: 'lan' },
      [
        /^network "prod" of photon@5\.0\.1 is mapped to "lan", which does not exist in east-1 .*change the mapping with vmhub sddc update east-1 --network-map prod=<network>$/,
      ],
    ],
    [
      'a hardware version the hosts cannot create',
      { networks: [], hardwareVersions: ['vmx-21'] },
      {},
      {},
      [
        /needs virtual hardware vmx-21, which the hosts of east-1 cannot create \(newest: vmx-15\); deploy a version built for vmx-15 or older/,
      ],
    ],
    ['one of several hardware versions supported', { networks: [], hardwareVersions: ['vmx-21', 'vmx-13'] }, {}, {}, []],
    [
      'hardware versions the vCenter did not tell',
      { networks: [], hardwareVersions: ['vmx-99'] },
      { hardwareVersions: undefined },
      {},
      [],
    ],
    ['a descriptor naming no vmx version', { networks: [], hardwareVersions: [] }, {}, {}, []],
    [
      'more CPUs than the largest host has threads',
      { networks: [], cpus: 4 },
      {},
      {},
      [
        /^photon@5\.0\.1 needs 4 CPUs and the largest host of east-1 has 2 CPU threads; deploy a smaller version or add a larger host$/,
      ],
    ],
    [
      'more memory than the largest host has',
      { networks: [], memoryMiB: 8192 },
      {},
      {},
      [/needs 8192 MiB of memory and the largest host of east-1 has 4095 MiB/],
    ],
    ['hosts the vCenter did not list', { networks: [], cpus: 64 }, { largestHost: undefined }, {}, []],
  ])('%s', (_case, version, sddc, map, expected) => {
    const refusals = preflightRefusals({ ...photon, ...version }, { ...east1, ...sddc }, map);
    expect(refusals).toHaveLength(expected.length);
    expected.forEach((re, i) => expect(refusals[i]).toMatch(re));
  });

  it('gives every refusal at once, networks first, and lists at most ten networks', () => {
    const many = Array.from({ length: 12 }, (_, i) => `net-${i}`);
    const refusals = preflightRefusals(
      { ...photon, networks: ['a', 'b'], hardwareVersions: ['vmx-21'], cpus: 8, memoryMiB: 1 << 20 },
      { ...east1, networks: many },
    );
    expect(refusals.map((r) => r.slice(0, 12))).toEqual([
      'network "a" ',
      'network "b" ',
      'photon@5.0.1',
      'photon@5.0.1',
      'photon@5.0.1',
    ]);
    expect(refusals[0]).toContain('net-9, and 2 more)');
  });
});

describe('descriptorFacts', () => {
  it("takes an OVA's networks (its NetworkSection and NICs, once each), vmx versions, CPUs and memory; none of an ISO", () => {
    const metadata = {
      kind: 'ova',
      networks: [{ name: 'prod' }, { name: 'backup' }],
      nics: [{ network: 'prod' }, { network: 'mgmt' }, {}],
      hardwareFamily: ['vmx-07', 'vmx-09', 'virtualbox-2.2'],
      cpus: 2,
      memoryMiB: 512,
    } as unknown as ImageMetadata;
    expect(descriptorFacts(metadata)).toEqual({
      networks: ['prod', 'backup', 'mgmt'],
      hardwareVersions: ['vmx-07', 'vmx-09'],
      cpus: 2,
      memoryMiB: 512,
    });
    expect(descriptorFacts({ kind: 'iso' } as unknown as ImageMetadata)).toBeUndefined();
    expect(descriptorFacts(undefined)).toBeUndefined();
  });
});

describe('network maps of content library targets', () => {
  const target: ContentLibraryTarget = { kind: 'content-library', vcenter: 'https://vc.example.com/', library: 'vmhub' };

  it('adds, changes and removes mappings; an empty map is no map', () => {
    const mapped = withNetworkMap(target, ['prod=VM Network', 'test=DC0_DVPG0']);
    expect(mapped.networkMap).toEqual({ prod: 'VM Network', test: 'DC0_DVPG0' });
    expect(withNetworkMap(mapped, ['prod=DC0_DVPG0', 'test=']).networkMap).toEqual({ prod: 'DC0_DVPG0' });
    expect(withNetworkMap(mapped, ['prod=', 'test='])).toEqual(target);
    // A value may itself hold "=": only the first one separates.
    expect(withNetworkMap(target, ['a=b=c']).networkMap).toEqual({ a: 'b=c' });
    expect(parseTarget({ ...target, networkMap: { prod: 'VM Network' } })).toEqual({
      ...target,
      networkMap: { prod: 'VM Network' },
    });
  });

  it.each([
    [['prod'], /is not <network>=<network>/],
    [['=VM Network'], /1 to 80 characters/],
    [[`prod=${'n'.repeat(81)}`], /1 to 80 characters/],
    [['prod=VM\tNetwork'], /without control characters/],
  ])('refuses %j with InvalidInput', (changes, message) => {
    expect(() => withNetworkMap(target, changes)).toThrow(message);
    expect(() => withNetworkMap(target, changes)).toThrow(VmhubError);
  });

  it('refuses a map that is not names to names, from the catalog or the topology', () => {
    expect(() => parseTarget({ ...target, networkMap: ['prod'] })).toThrow(/networkMap must map network names/);
    expect(() => parseTarget({ ...target, networkMap: { prod: 7 } })).toThrow(/1 to 80 characters/);
  });

  it('maps networks only of a content library', () => {
    expect(mappedTarget('east-1', target, ['prod=VM Network'])).toEqual({ ...target, networkMap: { prod: 'VM Network' } });
    expect(mappedTarget('east-1', target, [])).toBe(target);
    expect(() => mappedTarget('dir-1', { kind: 'directory' }, ['prod=VM Network'])).toThrow(
      /--network-map maps networks of a vCenter, and dir-1 deploys into .*; give --vcenter too/,
    );
  });
});

describe('mappedNetworks', () => {
  const networks = [
    { id: 'network-6', name: 'VM Network' },
    { id: 'dvportgroup-12', name: 'DC0_DVPG0' },
  ];
  it('gives each mapped descriptor network the ID of the vCenter network it names', () => {
    expect(mappedNetworks({ prod: 'VM Network', lab: 'DC0_DVPG0' }, networks, 'https://vc/')).toEqual([
      { key: 'prod', value: 'network-6' },
      { key: 'lab', value: 'dvportgroup-12' },
    ]);
    expect(mappedNetworks({}, networks, 'https://vc/')).toEqual([]);
  });
  it('refuses a map to a network the vCenter does not have', () => {
    expect(() => mappedNetworks({ prod: 'gone' }, networks, 'https://vc/')).toThrow(
      'vCenter https://vc/ has no network named gone, which prod is mapped to',
    );
  });
});

describe('the demo', () => {
  it("deploys its Photon OVA to the default SDDCs: their network map and vcsim's networks satisfy the preflight", async () => {
    const photon5 = describeOvf(await parseOvf(fixture('govmomi__photon5.ovf')));
    const facts = descriptorFacts({ ...photon5, kind: 'ova' } as unknown as ImageMetadata)!;
    const topology = loadTopology(path.join(__dirname, '..', '..', 'config', 'topology.json'));
    for (const seed of topology.sddcs) {
      const target = seed.target as ContentLibraryTarget;
      const vcsim: SddcFacts = { sddc: seed.name, networks: ['VM Network', 'DC0_DVPG0'] };
      const refusals = preflightRefusals({ ref: 'photon@5.0.0', ...facts }, vcsim, target.networkMap);
      expect(refusals).toEqual([]);
    }
  });
});
