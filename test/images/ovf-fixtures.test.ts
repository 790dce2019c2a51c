import fs from 'node:fs';
import { parseOvf } from '../../src/images/ovf/envelope';
import { describeOvf, type OvfMetadata } from '../../src/images/ovf/metadata';
import { describeWithFixtures, fixture, FIXTURES } from './fixtures';

const MiB = 2 ** 20;
const GiB = 2 ** 30;

async function read(name: string): Promise<OvfMetadata> {
  return describeOvf(await parseOvf(fixture(name)));
}

/** What a person reading each descriptor would write down. */
const expected: Record<
  string,
  Partial<OvfMetadata> & {
    diskCapacities?: Array<number | string>;
    networkNames?: string[];
    options?: Array<[string, number, number]>;
  }
> = {
  'govmomi__ttylinux-pc_i486-16.1.ovf': {
    ovfVersion: '1.x',
    name: 'ttylinux-pc_i486-16.1',
    os: { id: 36, osType: 'otherLinuxGuest' },
    hardwareFamily: ['vmx-09'],
    firmware: 'efi',
    cpus: 1,
    memoryMiB: 32,
    diskCapacities: [30 * MiB],
    networkNames: ['nat'],
    resources: { cpus: 1, memoryMiB: 32, diskBytes: 30 * MiB },
  },
  'govmomi__photon5.ovf': {
    name: 'Photon OS',
    product: 'Photon OS',
    vendor: 'VMware Inc.',
    version: '5.0',
    hardwareFamily: ['vmx-15'],
    firmware: 'efi',
    cpus: 1,
    memoryMiB: 2048,
    diskCapacities: [16 * GiB],
    eula: true,
  },
  'govmomi__ubuntu24.10.ovf': {
    name: 'ubuntu-oracular-24.10-cloudimg-20241109',
    product: 'Ubuntu 24.10 Server (20241109)',
    version: undefined,
    os: { id: 94, osType: 'ubuntu64Guest', description: 'Ubuntu Linux (64-bit)' },
    hardwareFamily: ['vmx-10'],
    firmware: 'bios',
    cpus: 2,
    memoryMiB: 1024,
    diskCapacities: [10 * GiB],
    networkNames: ['VM Network'],
  },
  'govmomi__Vcf-License-Server-9.1.0.0.25262073.ovf': {
    product: 'VCF License Server Appliance',
    vendor: 'Broadcom Inc.',
    version: '9.1.0.0',
    fullVersion: '9.1.0.0_Build_25262073',
    hardwareFamily: ['vmx-13'],
    firmware: 'efi',
    cpus: 2,
    memoryMiB: 4096,
    diskCapacities: [4 * GiB, 4 * GiB, 4 * GiB],
    resources: { cpus: 2, memoryMiB: 4096, diskBytes: 12 * GiB },
  },
  'govmomi__nsx-unified-appliance-9.1.0.0.25262063.ovf': {
    name: 'nsx-unified-appliance',
    vendor: 'VMware, Inc',
    version: '9.1.0.0',
    fullVersion: '9.1.0.0.25262063',
    os: { id: 94, osType: 'ubuntu64Guest', description: 'Ubuntu 16.04 64bit' },
    cpus: 6,
    memoryMiB: 24 * 1024,
    options: [
      ['small', 4, 16384],
      ['medium', 6, 24576],
      ['large', 12, 49152],
      ['xlarge', 24, 98304],
    ],
  },
  'govmomi__3VMvApp.ovf': {
    name: '3VMvApp',
    cpus: 3,
    memoryMiB: 12,
    diskCapacities: [4 * MiB, 4 * MiB, 4 * MiB],
    networkNames: ['DPortGroup'],
  },
  'govmomi__properties.ovf': {
    name: 'test-vm',
    product: 'ttylinux',
    vendor: 'Minimalinux',
    version: '16.1',
    hardwareFamily: ['vmx-19'],
    cpus: 2,
    memoryMiB: 2048,
  },
  'govmomi__multiple_disks.ovf': {
    name: 'uber',
    firmware: 'efi',
    diskCapacities: [
      30 * GiB,
      30 * GiB,
      40 * GiB,
      50 * GiB,
      100 * GiB,
      '${scratch_space_size_small}',
      '${scratch_space_size_large}',
    ],
    options: [
      ['small', 1, 32],
      ['large', 2, 64],
    ],
  },
  'govmomi__esxvmovf-25262174.ovf': {
    os: { id: 104, osType: 'vmkernel8Guest', description: 'VMware ESXi 8.x' },
    hardwareFamily: ['vmx-20'],
    firmware: 'efi',
    cpus: 2,
    memoryMiB: 8192,
    diskCapacities: [32 * GiB],
  },
  'govmomi__virtualsystemcollection.ovf': {
    ovfVersion: '2.x',
    name: 'The Great Appliance',
    vendor: 'Some Great Corporation',
    version: '13.00',
    cpus: 2,
    memoryMiB: 2048,
    networkNames: ['VS Network'],
  },
  'virt-v2v__test-i-ova.ovf': {
    name: 'TestOva',
    os: { id: 74, osType: 'windows7_64Guest' },
    hardwareFamily: ['vmx-08'],
    cpus: 1,
    memoryMiB: 2048,
    diskCapacities: [32 * GiB],
  },
  'virt-v2v__test-i-ova-two-disks.ovf': {
    os: { id: 103, osType: 'windows7Server64Guest', description: 'Microsoft Windows Server 2008 R2 (64-bit)' },
    diskCapacities: [50 * GiB, 450 * GiB],
    resources: { cpus: 1, memoryMiB: 1024, diskBytes: 500 * GiB },
  },
  'virt-v2v__test-i-ova-gz.ovf': { name: '2K8R2EESP1_2_Medium', cpus: 1, memoryMiB: 1024, diskCapacities: [50 * GiB] },
  'vagrant-smartos-gas__box.ovf': {
    name: 'vagrant-smartos-cpp',
    os: { id: 81, osType: 'OpenSolaris_64', description: 'Solaris_64' },
    hardwareFamily: ['virtualbox-2.2'],
    cpus: 1,
    memoryMiB: 1024,
    diskCapacities: [8388608000, 282558464],
    resources: { cpus: 1, memoryMiB: 1024, diskBytes: 8388608000 },
  },
  'nxos-vagrant__box.ovf': { name: 'edev', firmware: 'efi', cpus: 2, memoryMiB: 8196, diskCapacities: [4 * GiB] },
  'vm-import-controller__ubuntu.2.0.ovf': {
    ovfVersion: '2.x',
    name: 'ubuntu',
    cpus: 1,
    memoryMiB: 512,
    diskCapacities: [8 * GiB],
    resources: { cpus: 1, memoryMiB: 512, diskBytes: 8 * GiB },
  },
  'cot__csr1000v_2017.ovf': {
    product: 'Cisco CSR 1000V Cloud Services Router',
    vendor: 'Cisco Systems, Inc.',
    version: 'DEV',
    hardwareFamily: ['vmx-10', 'vmx-11', 'vmx-13'],
    cpus: 1,
    memoryMiB: 4096,
    networkNames: ['GigabitEthernet1', 'GigabitEthernet2', 'GigabitEthernet3'],
    options: [
      ['1CPU-4GB', 1, 4096],
      ['2CPU-4GB', 2, 4096],
      ['4CPU-4GB', 4, 4096],
      ['4CPU-8GB', 4, 8192],
    ],
  },
  'cot__v0.9.ovf': {
    ovfVersion: '0.9',
    os: { id: 107, osType: 'other26xLinux64Guest' },
    hardwareFamily: ['vmx-04'],
    cpus: 1,
    memoryMiB: 8192,
    diskCapacities: [GiB],
    networkNames: ['bridged'],
    eula: true,
  },
};

describeWithFixtures('OVF descriptors from real exporters', () => {
  it('covers every descriptor in the fixtures folder', () => {
    expect(
      fs
        .readdirSync(FIXTURES)
        .filter((f) => f.endsWith('.ovf'))
        .sort(),
    ).toEqual(Object.keys(expected).sort());
  });

  it.each(Object.entries(expected))('%s', async (name, want) => {
    const m = await read(name);
    const { diskCapacities, networkNames, options, ...fields } = want;
    expect(m).toMatchObject(fields);
    if ('version' in fields && fields.version === undefined) expect(m.version).toBeUndefined();
    if (diskCapacities) expect(m.disks.map((d) => d.capacityBytes ?? d.capacityUnresolved)).toEqual(diskCapacities);
    if (networkNames) expect(m.networks.map((n) => n.name)).toEqual(networkNames);
    if (options) expect(m.deploymentOptions.map((o) => [o.id, o.resources.cpus, o.resources.memoryMiB])).toEqual(options);
    expect(m.resources.cpus).toBe(m.cpus);
    expect(m.resources.memoryMiB).toBe(m.memoryMiB);
  });

  it('reports the default deployment option and its disks', async () => {
    const nsx = await read('govmomi__nsx-unified-appliance-9.1.0.0.25262063.ovf');
    expect(nsx.deploymentOptions.find((o) => o.default)?.id).toBe('medium');
    expect(nsx.deploymentOptions.find((o) => o.id === 'xlarge')?.resources.diskBytes).toBe(400 * GiB);
  });

  it('lists the VMs of a collection', async () => {
    const vapp = await read('govmomi__3VMvApp.ovf');
    expect(vapp.virtualSystems?.map((v) => v.resources.cpus)).toEqual([1, 1, 1]);
  });

  it('keeps file compression and NIC adapters', async () => {
    const gz = await read('virt-v2v__test-i-ova-gz.ovf');
    expect(gz.files[0]).toMatchObject({ href: 'disk1.vmdk.gz', compression: 'gzip' });
    const csr = await read('cot__csr1000v_2017.ovf');
    expect(csr.nics.map((n) => n.adapter)).toEqual(['VMXNET3', 'VMXNET3', 'VMXNET3']);
  });
});
