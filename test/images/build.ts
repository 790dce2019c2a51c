import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { END_OF_ARCHIVE, entryHeader, padded } from '../../src/images/tar-header';

/** Real archives and ISOs for tests, made by GNU tar and xorriso from files written here. */
export type Member = { name: string; bytes: Buffer };

export function tempDir(prefix = 'vmhub-img-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** Deterministic filler bytes of a given size. */
export function filler(size: number, seed = 1): Buffer {
  const buf = Buffer.alloc(size);
  let x = seed || 1;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    buf[i] = x >>> 16;
  }
  return buf;
}

/** Sets every File's ovf:size in a descriptor to the size of the member written for it. */
export function withFileSizes(descriptor: string, sizes: Record<string, number>): string {
  return descriptor.replace(/<([\w:]*)File\b([^>]*?)\/>/g, (whole, prefix: string, attrs: string) => {
    const href = /(?:ovf:)?href="([^"]+)"/.exec(attrs)?.[1];
    if (!href || sizes[href] === undefined) return whole;
    const next = /\bovf:size="\d+"/.test(attrs)
      ? attrs.replace(/\bovf:size="\d+"/, `ovf:size="${sizes[href]}"`)
      : `${attrs} ovf:size="${sizes[href]}"`;
    return `<${prefix}File${next}/>`;
  });
}

/** File hrefs a descriptor references. */
export function referencedFiles(descriptor: string): string[] {
  return [...descriptor.matchAll(/<(?:[\w]+:)?File\b[^>]*?(?:ovf:)?href="([^"]+)"/g)].map((m) => m[1]);
}

export function manifestLine(algorithm: 'sha1' | 'sha256' | 'sha512', name: string, bytes: Buffer, shape = 0): string {
  const digest = createHash(algorithm).update(bytes).digest('hex');
  const alg = algorithm.toUpperCase();
  return [`${alg}(${name})= ${digest}`, `${alg} (${name})= ${digest}`, `${alg} (${name}) = ${digest}`][shape];
}

/** Writes the members and archives them in the given order with GNU tar in the given header format. */
export function tarArchive(
  out: string,
  members: Member[],
  format: 'ustar' | 'gnu' | 'pax' = 'ustar',
  extraArgs: string[] = [],
): string {
  const dir = tempDir('vmhub-tar-');
  for (const m of members) {
    fs.mkdirSync(path.dirname(path.join(dir, m.name)), { recursive: true });
    fs.writeFileSync(path.join(dir, m.name), m.bytes);
  }
  execFileSync('tar', [`--format=${format}`, '-cf', out, '-C', dir, ...extraArgs, ...members.map((m) => m.name)]);
  fs.rmSync(dir, { recursive: true, force: true });
  return out;
}

/**
 * An OVA from a descriptor: each referenced file gets `fileSize` filler bytes, the descriptor's sizes
 * are set to match, and a manifest of the chosen algorithm is added after the descriptor.
 */
export function ovaFromDescriptor(
  out: string,
  descriptor: string,
  options: {
    fileSize?: number;
    manifest?: 'sha1' | 'sha256' | 'sha512' | false;
    crlf?: boolean;
    format?: 'ustar' | 'gnu' | 'pax';
    descriptorName?: string;
  } = {},
): { path: string; members: Member[] } {
  const hrefs = referencedFiles(descriptor);
  const files = hrefs.map((href, i) => ({ name: href, bytes: filler(options.fileSize ?? 4096 + i, i + 1) }));
  const ovf = {
    name: options.descriptorName ?? 'appliance.ovf',
    bytes: Buffer.from(withFileSizes(descriptor, Object.fromEntries(files.map((f) => [f.name, f.bytes.length])))),
  };
  const members: Member[] = [ovf];
  if (options.manifest !== false) {
    const alg = options.manifest ?? 'sha256';
    const lines = [ovf, ...files].map((m, i) => manifestLine(alg, m.name, m.bytes, i % 3));
    members.push({
      name: ovf.name.replace(/\.ovf$/, '.mf'),
      bytes: Buffer.from(lines.join(options.crlf ? '\r\n' : '\n') + '\n'),
    });
  }
  members.push(...files);
  return { path: tarArchive(out, members, options.format), members };
}

/** A real ISO 9660 image with Joliet, optionally El Torito bootable, made by xorriso. */
export function isoImage(
  out: string,
  options: { volumeId: string; publisher?: string; application?: string; bootable?: boolean; extraBytes?: number },
): string {
  const dir = tempDir('vmhub-iso-');
  fs.writeFileSync(path.join(dir, 'README.TXT'), 'vmhub test volume\n');
  if (options.extraBytes) fs.writeFileSync(path.join(dir, 'payload.bin'), filler(options.extraBytes, 5));
  const args = ['-as', 'mkisofs', '-quiet', '-J', '-V', options.volumeId, '-o', out];
  if (options.publisher) args.push('-publisher', options.publisher);
  if (options.application) args.push('-A', options.application);
  if (options.bootable) {
    fs.writeFileSync(path.join(dir, 'boot.img'), Buffer.alloc(2048, 0x90));
    args.push('-b', 'boot.img', '-no-emul-boot', '-boot-load-size', '4');
  }
  execFileSync('xorriso', [...args, dir], { stdio: 'ignore' });
  fs.rmSync(dir, { recursive: true, force: true });
  return out;
}

/** An archive as vmhub writes one (ustar, PAX where needed), built in memory. */
export function archive(members: Member[], end = true): Buffer {
  const parts = members.flatMap((m) => [
    entryHeader(m.name, m.bytes.length),
    m.bytes,
    Buffer.alloc(padded(m.bytes.length) - m.bytes.length),
  ]);
  return Buffer.concat(end ? [...parts, END_OF_ARCHIVE] : parts);
}

export interface ApplianceShape {
  family?: string;
  firmware?: string;
  cpus?: number;
  memoryMiB?: number;
  /** Disk id, capacity (bytes or `${property}`) and, for a disk backed by a file, the file's name. */
  disks?: Array<[string, string, string?]>;
  networks?: string[];
  properties?: string;
}

/** A descriptor of one VM with the given hardware, disks (id, capacity in bytes or `${prop}`), networks and properties. */
export function applianceDescriptor(s: ApplianceShape = {}): string {
  const disks = (s.disks ?? [['vmdisk1', String(2 ** 30)]])
    .map(([id, capacity, file]) => `<Disk ovf:diskId="${id}" ovf:capacity="${capacity}"${file ? ` ovf:fileRef="${file}"` : ''}/>`)
    .join('');
  const files = (s.disks ?? []).flatMap(([, , file]) => (file ? [`<File ovf:href="${file}" ovf:id="${file}"/>`] : [])).join('');
  const networks = (s.networks ?? ['VM Network']).map((n) => `<Network ovf:name="${n}"/>`).join('');
  const firmware = s.firmware ? `<vmw:Config ovf:required="false" vmw:key="firmware" vmw:value="${s.firmware}"/>` : '';
  return `<?xml version="1.0"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
  xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
  xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData"
  xmlns:vmw="http://www.vmware.com/schema/ovf">
  <References>${files}</References>
  <DiskSection><Info/>${disks}</DiskSection>
  <NetworkSection><Info/>${networks}</NetworkSection>
  <VirtualSystem ovf:id="vm"><Info/><Name>vm</Name>
    <ProductSection ovf:class="app" ovf:instance="vm"><Info/><Product>App</Product>${s.properties ?? ''}</ProductSection>
    <VirtualHardwareSection><Info/>
      <System><vssd:VirtualSystemType>${s.family ?? 'vmx-19'}</vssd:VirtualSystemType></System>
      <Item><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>${s.cpus ?? 2}</rasd:VirtualQuantity></Item>
      <Item><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits><rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>${s.memoryMiB ?? 2048}</rasd:VirtualQuantity></Item>
      ${firmware}
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>`;
}

/**
 * A descriptor vcsim can deploy a VM from, that fits its hosts (2 CPU threads, 4 GiB) as the preflight
 * checks: 2 CPUs, 2 GiB, one disk on a SCSI controller.
 */
export const EDGE_DESCRIPTOR = `<?xml version="1.0"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
  xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
  xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:vmw="http://www.vmware.com/schema/ovf">
  <References><File ovf:href="edge-disk1.vmdk" ovf:id="f1"/></References>
  <DiskSection><Info/><Disk ovf:diskId="d1" ovf:fileRef="f1" ovf:capacity="20" ovf:capacityAllocationUnits="byte * 2^30"/></DiskSection>
  <VirtualSystem ovf:id="edge"><Info/><Name>edge</Name>
    <ProductSection><Info/><Product>Edge</Product><Version>VERSION</Version></ProductSection>
    <OperatingSystemSection ovf:id="101" vmw:osType="otherLinux64Guest"><Info/></OperatingSystemSection>
    <VirtualHardwareSection><Info/>
      <System><vssd:ElementName>Virtual Hardware Family</vssd:ElementName><vssd:InstanceID>0</vssd:InstanceID><vssd:VirtualSystemType>vmx-15</vssd:VirtualSystemType></System>
      <Item><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>2</rasd:VirtualQuantity></Item>
      <Item><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits><rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>2048</rasd:VirtualQuantity></Item>
      <Item><rasd:InstanceID>4</rasd:InstanceID><rasd:ResourceSubType>lsilogic</rasd:ResourceSubType><rasd:ResourceType>6</rasd:ResourceType></Item>
      <Item><rasd:AddressOnParent>0</rasd:AddressOnParent><rasd:HostResource>ovf:/disk/d1</rasd:HostResource><rasd:InstanceID>3</rasd:InstanceID><rasd:Parent>4</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>`;

/**
 * `<name>-<version>.ova` in `dir`: EDGE_DESCRIPTOR, a disk of `diskBytes`, a SHA-256 manifest. Test files
 * running at once share the repository: each names its own.
 */
export function edgeOva(dir: string, version: string, diskBytes: number, name = 'edge'): { file: string; members: Member[] } {
  const file = `${name}-${version}.ova`;
  const { members } = ovaFromDescriptor(path.join(dir, file), EDGE_DESCRIPTOR.replace('VERSION', version), {
    fileSize: diskBytes,
    manifest: 'sha256',
    descriptorName: 'edge.ovf',
  });
  return { file, members };
}
