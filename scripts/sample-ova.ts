import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { PROJECT_ROOT } from '../src/config';
import { END_OF_ARCHIVE, entryHeader, padded } from '../src/images/tar-header';

/**
 * The demo's sample appliance: a real OVF descriptor (Photon OS, from ../shared/fixtures when present,
 * else a small one of vmhub's own), a manifest, and a disk of zeros, packed as an OVA. The same inputs
 * always give the same bytes, so a second demo run finds the version already published.
 */
const FIXTURE = path.resolve(PROJECT_ROOT, '..', 'shared', 'fixtures', 'ovf', 'govmomi__photon5.ovf');
const DISK = 'photon-ova-disk1.vmdk';

const OWN_DESCRIPTOR = `<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
  xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
  xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:vmw="http://www.vmware.com/schema/ovf">
  <References><File ovf:href="${DISK}" ovf:id="file1" ovf:size="0"/></References>
  <DiskSection><Info>Virtual disks</Info><Disk ovf:capacity="16" ovf:capacityAllocationUnits="byte * 2^30" ovf:diskId="vmdisk1" ovf:fileRef="file1"/></DiskSection>
  <NetworkSection><Info>Networks</Info><Network ovf:name="VM Network"><Description>The VM network</Description></Network></NetworkSection>
  <VirtualSystem ovf:id="vmhub-sample">
    <Info>A virtual machine</Info><Name>vmhub sample appliance</Name>
    <ProductSection><Info>Product</Info><Product>vmhub sample appliance</Product><Vendor>vmhub</Vendor><Version>5.0.0</Version></ProductSection>
    <OperatingSystemSection ovf:id="36" vmw:osType="vmwarePhoton64Guest"><Info>Guest OS</Info></OperatingSystemSection>
    <VirtualHardwareSection><Info>Hardware</Info>
      <System><vssd:ElementName>Virtual Hardware Family</vssd:ElementName><vssd:InstanceID>0</vssd:InstanceID><vssd:VirtualSystemType>vmx-15</vssd:VirtualSystemType></System>
      <Item><rasd:ElementName>2 virtual CPUs</rasd:ElementName><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>2</rasd:VirtualQuantity></Item>
      <Item><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits><rasd:ElementName>2048 MB of memory</rasd:ElementName><rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>2048</rasd:VirtualQuantity></Item>
      <Item><rasd:ElementName>disk0</rasd:ElementName><rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource><rasd:InstanceID>3</rasd:InstanceID><rasd:ResourceType>17</rasd:ResourceType></Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
`;

export interface SampleImage {
  path: string;
  descriptorFrom: string;
  sizeBytes: number;
}

export function buildSampleOva(out: string, diskBytes: number): SampleImage {
  const fromFixture = fs.existsSync(FIXTURE);
  const template = fromFixture ? fs.readFileSync(FIXTURE, 'utf8') : OWN_DESCRIPTOR;
  const descriptor = Buffer.from(template.replace(new RegExp(`(ovf:href="${DISK}"[^>]*ovf:size=")\\d+"`), `$1${diskBytes}"`));
  const zeros = Buffer.alloc(Math.min(diskBytes, 8 * 2 ** 20));
  const diskHash = createHash('sha256');
  for (let left = diskBytes; left > 0; left -= zeros.length) diskHash.update(zeros.subarray(0, Math.min(left, zeros.length)));
  const manifest = Buffer.from(
    `SHA256(photon.ovf)= ${createHash('sha256').update(descriptor).digest('hex')}\nSHA256(${DISK})= ${diskHash.digest('hex')}\n`,
  );

  fs.mkdirSync(path.dirname(out), { recursive: true });
  const fd = fs.openSync(`${out}.tmp`, 'w');
  const member = (name: string, bytes: Buffer) => {
    fs.writeSync(fd, entryHeader(name, bytes.length));
    fs.writeSync(fd, bytes);
    fs.writeSync(fd, Buffer.alloc(padded(bytes.length) - bytes.length));
  };
  member('photon.ovf', descriptor);
  member('photon.mf', manifest);
  fs.writeSync(fd, entryHeader(DISK, diskBytes));
  for (let left = diskBytes; left > 0; left -= zeros.length) fs.writeSync(fd, zeros, 0, Math.min(left, zeros.length));
  fs.writeSync(fd, Buffer.alloc(padded(diskBytes) - diskBytes));
  fs.writeSync(fd, END_OF_ARCHIVE);
  fs.closeSync(fd);
  fs.renameSync(`${out}.tmp`, out);
  return {
    path: out,
    descriptorFrom: fromFixture ? path.relative(PROJECT_ROOT, FIXTURE) : 'built-in descriptor',
    sizeBytes: fs.statSync(out).size,
  };
}
