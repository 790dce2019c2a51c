import { createHash } from 'node:crypto';
import { VmhubError } from '../../shared/errors';
import { bytes, count, ResourceType } from './cim';
import type { OvfEnvelope, OvfItem, OvfProduct, OvfProperty, OvfVirtualSystem } from './envelope';

/** What the catalog records of an OVF descriptor, derived from the typed envelope. */
export interface Resources {
  cpus: number;
  memoryMiB: number;
  diskBytes: number;
}

export interface OvfMetadata {
  kind: 'ovf';
  ovfVersion: OvfEnvelope['ovfVersion'];
  name: string;
  product?: string;
  vendor?: string;
  version?: string;
  fullVersion?: string;
  os?: { id?: number; osType?: string; description?: string };
  hardwareFamily: string[];
  firmware: string;
  cpus: number;
  coresPerSocket?: number;
  memoryMiB: number;
  disks: Array<{
    diskId: string;
    file?: string;
    capacityBytes?: number;
    capacityUnresolved?: string;
    populatedSizeBytes?: number;
    format?: string;
  }>;
  networks: Array<{ name: string; description?: string }>;
  nics: Array<{ name?: string; network?: string; adapter?: string }>;
  files: Array<{ href: string; size?: number; compression?: string }>;
  deploymentOptions: Array<{ id: string; label?: string; default: boolean; resources: Resources }>;
  properties: string[];
  /**
   * The ProductSection properties with their defaults (`vmhub diff` compares them); absent in records
   * published before they were kept. At most MAX_RECORDED_PROPERTIES, `ovfPropertiesOmitted` counting the rest.
   */
  ovfProperties?: OvfPropertyNote[];
  ovfPropertiesOmitted?: number;
  eula: boolean;
  /** Every VM of a VirtualSystemCollection; absent for a single VM. */
  virtualSystems?: Array<{ id: string; name?: string; os?: OvfMetadata['os']; resources: Resources }>;
  resources: Resources;
}

/**
 * One property as the catalog keeps it. `id` is its fully qualified key (`class.key.instance`, as vSphere
 * names a vApp property). A password's default is never kept; a default longer than MAX_RECORDED_VALUE
 * characters is kept as its SHA-256 (`valueSha256`) and length, which still tell a change.
 */
export interface OvfPropertyNote {
  id: string;
  type?: string;
  userConfigurable: boolean;
  password?: true;
  value?: string;
  valueSha256?: string;
  valueLength?: number;
}

/** Bounds that keep the properties a small part of the metadata's 512 KiB: 200 × (256 + overhead) ≈ 64 KiB. */
export const MAX_RECORDED_PROPERTIES = 200;
export const MAX_RECORDED_VALUE = 256;

const MiB = 2 ** 20;

/** What an item adds to its VM; `diskRefs` counts the host resources of disk drives. */
interface ItemUsage {
  cpus: number;
  memoryBytes: number;
  diskBytes: number;
  diskRefs: number;
}

/** A VM's resources, with memory rounded up to MiB per VM, and its drives' host resources. */
interface VmUsage extends Resources {
  diskRefs: number;
}

const NO_ITEM: ItemUsage = { cpus: 0, memoryBytes: 0, diskBytes: 0, diskRefs: 0 };
const NO_VM: VmUsage = { cpus: 0, memoryMiB: 0, diskBytes: 0, diskRefs: 0 };

function add<T extends object>(a: T, b: T, sign: 1 | -1 = 1): T {
  const out = { ...a } as Record<string, number>;
  for (const [k, v] of Object.entries(b) as Array<[string, number]>) out[k] += sign * v;
  return out as T;
}

function diskIdOf(hostResource: string): { disk?: string; file?: string } {
  const m = /(?:^|[:/])(disk|file)\/([^/]+)$/.exec(hostResource.trim());
  if (!m) return {};
  return m[1] === 'disk' ? { disk: m[2] } : { file: m[2] };
}

/** A map by ID where the first of a repeated ID wins, as a search in document order finds it. */
function firstById<T>(values: T[], id: (v: T) => string | undefined): Map<string, T> {
  const map = new Map<string, T>();
  for (const v of values) {
    const key = id(v);
    if (key !== undefined && !map.has(key)) map.set(key, v);
  }
  return map;
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

/**
 * A VM's virtual hardware indexed in one pass, so that evaluating a deployment option costs only the
 * items naming it, never every item once per option. Among items sharing an InstanceID (OVF §9.8) the
 * first naming the option replaces the first naming none, and the others drop out.
 */
class Hardware {
  /** Items naming no option: those without an InstanceID, and the first for each InstanceID. */
  private readonly anonymous: OvfItem[];
  private readonly shared: Map<string, OvfItem>;
  /** Per option, the items naming it, in document order. */
  private readonly own = new Map<string, OvfItem[]>();
  private readonly position = new Map<OvfItem, number>();
  private readonly sharedUsage: ItemUsage;

  constructor(
    vs: OvfVirtualSystem,
    private readonly usageOf: (item: OvfItem) => ItemUsage,
  ) {
    const common: OvfItem[] = [];
    vs.hardware.items.forEach((item, i) => {
      this.position.set(item, i);
      if (item.configurations === undefined) common.push(item);
      else for (const option of new Set(item.configurations)) push(this.own, option, item);
    });
    this.shared = firstById(common, (item) => item.instanceId);
    this.anonymous = common.filter((item) => item.instanceId === undefined);
    this.sharedUsage = [...this.anonymous, ...this.shared.values()].map(usageOf).reduce((a, b) => add(a, b), NO_ITEM);
  }

  /** The deployment options this VM's items name. */
  options(): IterableIterator<string> {
    return this.own.keys();
  }

  /** The option's own items in force: the first naming it for each InstanceID, and every one without. */
  private ownSelection(option: string | undefined): { byId: Map<string, OvfItem>; anonymous: OvfItem[] } {
    const own = (option !== undefined && this.own.get(option)) || [];
    return { byId: firstById(own, (item) => item.instanceId), anonymous: own.filter((item) => item.instanceId === undefined) };
  }

  usage(option: string | undefined): VmUsage {
    const { byId, anonymous } = this.ownSelection(option);
    let total = this.sharedUsage;
    for (const [id, item] of byId) {
      const replaced = this.shared.get(id);
      if (replaced) total = add(total, this.usageOf(replaced), -1);
      total = add(total, this.usageOf(item));
    }
    for (const item of anonymous) total = add(total, this.usageOf(item));
    const { memoryBytes, ...rest } = total;
    return { ...rest, memoryMiB: Math.ceil(memoryBytes / MiB) };
  }

  /** The items in force for an option: those without an InstanceID, then one per InstanceID in order of first appearance. */
  items(option: string | undefined): OvfItem[] {
    const { byId, anonymous } = this.ownSelection(option);
    const at = (item: OvfItem | undefined) => (item ? this.position.get(item)! : Infinity);
    const chosen = new Map([...this.shared, ...byId]);
    const firstSeen = (id: string) => Math.min(at(this.shared.get(id)), at(byId.get(id)));
    return [
      ...[...this.anonymous, ...anonymous].sort((a, b) => at(a) - at(b)),
      ...[...chosen.keys()].sort((a, b) => firstSeen(a) - firstSeen(b)).map((id) => chosen.get(id)!),
    ];
  }
}

/**
 * Every VM's hardware, and the envelope's resources for any option: the VMs' usage with no option,
 * adjusted by the VMs that name the option and only those. When no drive refers to any disk, every
 * disk of the DiskSection counts once.
 */
class EnvelopeHardware {
  readonly vms: Hardware[];
  private readonly base: VmUsage;
  private readonly naming = new Map<string, Hardware[]>();
  private readonly allDisks: number;

  constructor(env: OvfEnvelope) {
    const disks = firstById(env.disks, (d) => d.diskId);
    const files = firstById(env.files, (f) => f.id);
    const usageOf = (item: OvfItem): ItemUsage => {
      const usage = { ...NO_ITEM };
      if (item.resourceType === ResourceType.Processor) usage.cpus = count(item.virtualQuantity, 'virtual CPU count') ?? 0;
      if (item.resourceType === ResourceType.Memory)
        usage.memoryBytes = bytes(item.virtualQuantity, item.allocationUnits, 'memory', MiB) ?? 0;
      if (item.resourceType === ResourceType.DiskDrive) {
        for (const ref of item.hostResources.map(diskIdOf)) {
          usage.diskRefs++;
          if (ref.disk) usage.diskBytes += disks.get(ref.disk)?.capacityBytes ?? 0;
          else if (ref.file) usage.diskBytes += files.get(ref.file)?.size ?? 0;
        }
      }
      return usage;
    };
    this.vms = env.virtualSystems.map((vs) => new Hardware(vs, usageOf));
    this.base = this.vms.map((vm) => vm.usage(undefined)).reduce((a, b) => add(a, b), NO_VM);
    for (const vm of this.vms) for (const option of vm.options()) push(this.naming, option, vm);
    this.allDisks = env.disks.reduce((n, d) => n + (d.capacityBytes ?? 0), 0);
  }

  resources(option: string | undefined): Resources {
    let total = this.base;
    for (const vm of (option !== undefined && this.naming.get(option)) || []) {
      total = add(add(total, vm.usage(undefined), -1), vm.usage(option));
    }
    return { cpus: total.cpus, memoryMiB: total.memoryMiB, diskBytes: total.diskRefs === 0 ? this.allDisks : total.diskBytes };
  }
}

function mainProduct(vs: OvfVirtualSystem): OvfProduct | undefined {
  return vs.products.find((p) => !p.className && p.product) ?? vs.products.find((p) => p.product || p.version) ?? vs.products[0];
}

function propertyNote(product: OvfProduct, p: OvfProperty): OvfPropertyNote {
  const id = [product.className, p.key, product.instance].filter(Boolean).join('.');
  const note: OvfPropertyNote = { id, type: p.type, userConfigurable: p.userConfigurable };
  if (p.password) return { ...note, password: true };
  if (p.value === undefined) return note;
  if (p.value.length <= MAX_RECORDED_VALUE) return { ...note, value: p.value };
  return { ...note, valueSha256: createHash('sha256').update(p.value).digest('hex'), valueLength: p.value.length };
}

/** The properties with their defaults, bounded (MAX_RECORDED_PROPERTIES), and how many were left out. */
function propertyNotes(env: OvfEnvelope): Pick<OvfMetadata, 'ovfProperties' | 'ovfPropertiesOmitted'> {
  const all = env.virtualSystems.flatMap((vs) =>
    vs.products.flatMap((product) => product.properties.filter((p) => p.key).map((p) => propertyNote(product, p))),
  );
  const omitted = all.length - MAX_RECORDED_PROPERTIES;
  return { ovfProperties: all.slice(0, MAX_RECORDED_PROPERTIES), ...(omitted > 0 ? { ovfPropertiesOmitted: omitted } : {}) };
}

export function describeOvf(env: OvfEnvelope): OvfMetadata {
  const defaultOption = env.deploymentOptions.find((o) => o.default) ?? env.deploymentOptions[0];
  const hardware = new EnvelopeHardware(env);
  const resources = hardware.resources(defaultOption?.id);
  const first = env.virtualSystems[0];
  const product = env.virtualSystems.map(mainProduct).find((p) => p?.product || p?.version);
  const items = hardware.vms.flatMap((vm) => vm.items(defaultOption?.id));
  const fileById = firstById(env.files, (f) => f.id);
  const name = env.collection
    ? (env.collection.name ?? product?.product ?? env.collection.id)
    : (first.name ?? product?.product ?? first.id);
  if (!name) throw new VmhubError('InvalidImage', 'descriptor names no virtual system');

  return {
    kind: 'ovf',
    ovfVersion: env.ovfVersion,
    name,
    product: product?.product,
    vendor: product?.vendor,
    version: product?.version,
    fullVersion: product?.fullVersion,
    os: first.os,
    hardwareFamily: [...new Set(env.virtualSystems.flatMap((vs) => vs.hardware.families))],
    firmware: first.hardware.firmware,
    cpus: resources.cpus,
    coresPerSocket: items.find((i) => i.resourceType === ResourceType.Processor && i.coresPerSocket)?.coresPerSocket,
    memoryMiB: resources.memoryMiB,
    disks: env.disks.map((d) => ({
      diskId: d.diskId,
      file: d.fileRef === undefined ? undefined : fileById.get(d.fileRef)?.href,
      capacityBytes: d.capacityBytes,
      capacityUnresolved: d.capacityUnresolved,
      populatedSizeBytes: d.populatedSizeBytes,
      format: d.format,
    })),
    networks: env.networks,
    nics: items
      .filter((i) => i.resourceType === ResourceType.EthernetAdapter)
      .map((i) => ({ name: i.elementName, network: i.connections[0], adapter: i.resourceSubType })),
    files: env.files.map((f) => ({ href: f.href, size: f.size, compression: f.compression })),
    deploymentOptions: env.deploymentOptions.map((o) => ({
      id: o.id,
      label: o.label,
      default: o === defaultOption,
      resources: hardware.resources(o.id),
    })),
    properties: env.virtualSystems
      .flatMap((vs) => vs.products.flatMap((p) => p.properties.map((prop) => prop.key)))
      .filter(Boolean),
    ...propertyNotes(env),
    eula: env.virtualSystems.some((vs) => vs.eula),
    virtualSystems:
      env.virtualSystems.length > 1
        ? env.virtualSystems.map((vs, i) => {
            const { cpus, memoryMiB, diskBytes } = hardware.vms[i].usage(defaultOption?.id);
            return { id: vs.id, name: vs.name, os: vs.os, resources: { cpus, memoryMiB, diskBytes } };
          })
        : undefined,
    resources,
  };
}
