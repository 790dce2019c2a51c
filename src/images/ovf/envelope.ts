import { VmhubError } from '../../shared/errors';
import { attr, child, children, childText, kind, parseXml, quoted, type NsTest, type XmlElement } from '../xml';
import { bytes, count, quantity } from './cim';
import { plural } from '../../shared/units';

/**
 * The OVF descriptor as one typed model (OVF 0.9, 1.x, 2.x with the rasd/vssd/sasd/epasd schemas and
 * the VMware and VirtualBox extensions), parsed once. Everything else reads this model, never XML.
 */
export interface OvfEnvelope {
  ovfVersion: '0.9' | '1.x' | '2.x';
  files: OvfFile[];
  disks: OvfDisk[];
  networks: Array<{ name: string; description?: string }>;
  deploymentOptions: OvfDeploymentOption[];
  virtualSystems: OvfVirtualSystem[];
  /** Set when the envelope holds a VirtualSystemCollection (a vApp). */
  collection?: { id: string; name?: string };
}

export interface OvfFile {
  id: string;
  href: string;
  size?: number;
  compression?: string;
}

export interface OvfDisk {
  diskId: string;
  fileRef?: string;
  /** Capacity in bytes; undefined when it is a `${property}` resolved only at deployment. */
  capacityBytes?: number;
  capacityUnresolved?: string;
  populatedSizeBytes?: number;
  format?: string;
}

export interface OvfDeploymentOption {
  id: string;
  label?: string;
  description?: string;
  default: boolean;
}

export interface OvfVirtualSystem {
  id: string;
  name?: string;
  products: OvfProduct[];
  os?: { id?: number; osType?: string; description?: string };
  hardware: {
    families: string[];
    firmware: string;
    items: OvfItem[];
  };
  eula: boolean;
}

export interface OvfProduct {
  className?: string;
  instance?: string;
  product?: string;
  vendor?: string;
  version?: string;
  fullVersion?: string;
  productUrl?: string;
  vendorUrl?: string;
  properties: OvfProperty[];
}

/** A ProductSection Property: its key, its type, its default (`ovf:value`) and whether a deployer may set it. */
export interface OvfProperty {
  key: string;
  type?: string;
  label?: string;
  value?: string;
  userConfigurable: boolean;
  /** `ovf:password="true"`: the value is a secret, never recorded. */
  password: boolean;
}

export interface OvfItem {
  /** Items sharing an InstanceID are alternatives: one per deployment option. */
  instanceId?: string;
  resourceType: number;
  resourceSubType?: string;
  elementName?: string;
  virtualQuantity?: string;
  allocationUnits?: string;
  hostResources: string[];
  connections: string[];
  /** Deployment options this item belongs to; undefined means all of them. */
  configurations?: string[];
  coresPerSocket?: number;
}

const isOvf: NsTest = (ns) =>
  ns.startsWith('http://schemas.dmtf.org/ovf/envelope/') || ns === 'http://www.vmware.com/schema/ovf/1/envelope';
// CIM schema URIs appear with and without a trailing `.xsd`.
const cim =
  (name: string): NsTest =>
  (ns) =>
    ns.replace(/\.xsd$/, '').endsWith(`/${name}`);
const isRasd = cim('CIM_ResourceAllocationSettingData');
const isVssd = cim('CIM_VirtualSystemSettingData');
const isSasd = cim('CIM_StorageAllocationSettingData');
const isEpasd = cim('CIM_EthernetPortAllocationSettingData');
const isVmw: NsTest = (ns) => ns === 'http://www.vmware.com/schema/ovf';
const isVbox: NsTest = (ns) => ns === 'http://www.virtualbox.org/ovf/machine';

function ovfVersion(root: XmlElement): OvfEnvelope['ovfVersion'] {
  if (root.ns === 'http://www.vmware.com/schema/ovf/1/envelope') return '0.9';
  if (root.ns.startsWith('http://schemas.dmtf.org/ovf/envelope/2')) return '2.x';
  return '1.x';
}

/** A package references each file once, and at most this many files. */
export const MAX_FILES = 1000;

function parseFiles(root: XmlElement): OvfFile[] {
  const refs = children(child(root, 'References', isOvf), 'File', isOvf);
  if (refs.length > MAX_FILES)
    throw new VmhubError('InvalidImage', `descriptor references ${plural(refs.length, 'file')}, more than ${MAX_FILES}`);
  const hrefs = new Set<string>();
  const ids = new Set<string>();
  return refs.map((f) => {
    const href = attr(f, 'href', isOvf);
    const id = attr(f, 'id', isOvf);
    if (!href || !id) throw new VmhubError('InvalidImage', 'descriptor has a File without id or href');
    if (hrefs.has(href)) throw new VmhubError('InvalidImage', `descriptor references ${quoted(href)} twice`);
    if (ids.has(id)) throw new VmhubError('InvalidImage', `descriptor has two files with id ${quoted(id)}`);
    hrefs.add(href);
    ids.add(id);
    return {
      id,
      href,
      size: quantity(attr(f, 'size', isOvf), `size of file ${href}`),
      compression: attr(f, 'compression', isOvf),
    };
  });
}

function parseDisks(root: XmlElement): OvfDisk[] {
  return children(child(root, 'DiskSection', isOvf), 'Disk', isOvf).map((d) => {
    const diskId = attr(d, 'diskId', isOvf) ?? '';
    const capacity = attr(d, 'capacity', isOvf) ?? '';
    const units = attr(d, 'capacityAllocationUnits', isOvf);
    const unresolved = /^\$\{[^}]+\}$/.test(capacity.trim()) ? capacity.trim() : undefined;
    return {
      diskId,
      fileRef: attr(d, 'fileRef', isOvf),
      capacityBytes: unresolved ? undefined : bytes(capacity, units, `capacity of disk ${diskId}`),
      capacityUnresolved: unresolved,
      populatedSizeBytes: quantity(attr(d, 'populatedSize', isOvf), `populated size of disk ${diskId}`),
      format: attr(d, 'format', isOvf),
    };
  });
}

function parseDeploymentOptions(root: XmlElement): OvfDeploymentOption[] {
  return children(child(root, 'DeploymentOptionSection', isOvf), 'Configuration', isOvf).map((c) => ({
    id: attr(c, 'id', isOvf) ?? '',
    label: childText(c, 'Label', isOvf),
    description: childText(c, 'Description', isOvf),
    default: attr(c, 'default', isOvf) === 'true',
  }));
}

function parseItem(el: XmlElement): OvfItem {
  const schema = kind(el) === 'StorageItem' ? isSasd : kind(el) === 'EthernetPortItem' ? isEpasd : isRasd;
  const text = (local: string) => childText(el, local, schema);
  const all = (local: string) => children(el, local, schema).map((c) => c.text);
  const configurations = attr(el, 'configuration', isOvf)?.split(/\s+/).filter(Boolean);
  return {
    instanceId: text('InstanceID') ?? text('InstanceId'), // OVF 0.9 spells it InstanceId
    resourceType: count(text('ResourceType'), 'ResourceType') ?? 0,
    resourceSubType: text('ResourceSubType'),
    elementName: text('ElementName') ?? text('Caption'),
    virtualQuantity: text('VirtualQuantity'),
    allocationUnits: text('AllocationUnits'),
    hostResources: all('HostResource'),
    connections: all('Connection'),
    configurations: configurations && configurations.length > 0 ? configurations : undefined,
    coresPerSocket: count(childText(el, 'CoresPerSocket', isVmw), 'CoresPerSocket'),
  };
}

function parseHardware(vs: XmlElement): OvfVirtualSystem['hardware'] {
  const sections = children(vs, 'VirtualHardwareSection', isOvf);
  const families = sections
    .flatMap((s) => children(s, 'System', isOvf))
    .flatMap((sys) => (childText(sys, 'VirtualSystemType', isVssd) ?? '').split(/[\s,]+/))
    .filter(Boolean);
  const items = sections.flatMap((s) =>
    s.children.filter((c) => ['Item', 'StorageItem', 'EthernetPortItem'].includes(kind(c)) && isOvf(c.ns)),
  );
  const vmwConfig = sections.flatMap((s) => children(s, 'Config', isVmw));
  const vmwFirmware = vmwConfig.find((c) => attr(c, 'key', isVmw) === 'firmware');
  // VirtualBox writes its machine's inner elements unprefixed, so they fall in the default namespace.
  const vboxFirmware = child(child(child(vs, 'Machine', isVbox), 'Hardware'), 'Firmware');
  const firmware = (attr(vmwFirmware, 'value', isVmw) ?? attr(vboxFirmware, 'type') ?? 'bios').toLowerCase();
  return { families: [...new Set(families)], firmware, items: items.map(parseItem) };
}

function parseProducts(vs: XmlElement): OvfProduct[] {
  return children(vs, 'ProductSection', isOvf).map((p) => ({
    className: attr(p, 'class', isOvf),
    instance: attr(p, 'instance', isOvf),
    product: childText(p, 'Product', isOvf),
    vendor: childText(p, 'Vendor', isOvf),
    version: childText(p, 'Version', isOvf),
    fullVersion: childText(p, 'FullVersion', isOvf),
    productUrl: childText(p, 'ProductUrl', isOvf),
    vendorUrl: childText(p, 'VendorUrl', isOvf),
    properties: [
      ...children(p, 'Property', isOvf),
      ...children(p, 'Category', isOvf).flatMap((c) => children(c, 'Property', isOvf)),
    ].map((prop) => ({
      key: attr(prop, 'key', isOvf) ?? '',
      type: attr(prop, 'type', isOvf),
      label: childText(prop, 'Label', isOvf),
      value: attr(prop, 'value', isOvf),
      userConfigurable: attr(prop, 'userConfigurable', isOvf) === 'true',
      password: attr(prop, 'password', isOvf) === 'true',
    })),
  }));
}

function parseVirtualSystem(vs: XmlElement): OvfVirtualSystem {
  const osSection = child(vs, 'OperatingSystemSection', isOvf);
  const vboxOs = childText(osSection, 'OSType', isVbox) ?? childText(vs, 'OSType', isVbox);
  return {
    id: attr(vs, 'id', isOvf) ?? '',
    name: childText(vs, 'Name', isOvf),
    products: parseProducts(vs),
    os:
      osSection || vboxOs
        ? {
            id: count(attr(osSection, 'id', isOvf), 'operating system id'),
            osType: attr(osSection, 'osType', isVmw) ?? vboxOs,
            description: childText(osSection, 'Description', isOvf),
          }
        : undefined,
    hardware: parseHardware(vs),
    eula: children(vs, 'EulaSection', isOvf).length > 0,
  };
}

/** Virtual systems in document order, descending into (nested) collections. */
function virtualSystems(el: XmlElement): XmlElement[] {
  return el.children.flatMap((c) => {
    if (!isOvf(c.ns)) return [];
    if (kind(c) === 'VirtualSystem') return [c];
    if (kind(c) === 'VirtualSystemCollection') return virtualSystems(c);
    return [];
  });
}

export function envelopeFromXml(root: XmlElement): OvfEnvelope {
  if (root.local !== 'Envelope' || !isOvf(root.ns)) {
    throw new VmhubError('InvalidImage', `descriptor root is <${root.local}> in "${root.ns}", not an OVF Envelope`);
  }
  const systems = virtualSystems(root);
  if (systems.length === 0) throw new VmhubError('InvalidImage', 'descriptor has no VirtualSystem');
  const collection = root.children.find((c) => kind(c) === 'VirtualSystemCollection' && isOvf(c.ns));
  return {
    ovfVersion: ovfVersion(root),
    files: parseFiles(root),
    disks: parseDisks(root),
    networks: children(child(root, 'NetworkSection', isOvf), 'Network', isOvf).map((n) => ({
      name: attr(n, 'name', isOvf) ?? '',
      description: childText(n, 'Description', isOvf),
    })),
    deploymentOptions: parseDeploymentOptions(root),
    virtualSystems: systems.map(parseVirtualSystem),
    collection: collection ? { id: attr(collection, 'id', isOvf) ?? '', name: childText(collection, 'Name', isOvf) } : undefined,
  };
}

export function parseOvf(text: string): OvfEnvelope {
  return envelopeFromXml(parseXml(text, 'OVF descriptor'));
}
