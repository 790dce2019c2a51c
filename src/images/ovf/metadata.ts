import { VmhubError } from '../../errors';
import { bytes, count, ResourceType } from './cim';
import type { OvfEnvelope, OvfItem, OvfProduct, OvfVirtualSystem } from './envelope';

/** What the catalog records of an OVF descriptor (SPEC §5), derived from the typed envelope. */
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
  eula: boolean;
  /** Every VM of a VirtualSystemCollection; absent for a single VM. */
  virtualSystems?: Array<{ id: string; name?: string; os?: OvfMetadata['os']; resources: Resources }>;
  resources: Resources;
}

const MiB = 2 ** 20;

/**
 * The items in force for one deployment option: among items sharing an InstanceID, the one naming the
 * option replaces the one naming none (OVF §9.8); an item naming only other options is left out.
 */
function itemsFor(items: OvfItem[], configuration: string | undefined): OvfItem[] {
  const chosen = new Map<string, OvfItem>();
  const result: OvfItem[] = [];
  for (const item of items) {
    const matches =
      item.configurations === undefined || (configuration !== undefined && item.configurations.includes(configuration));
    if (!matches) continue;
    if (item.instanceId === undefined) {
      result.push(item);
      continue;
    }
    const earlier = chosen.get(item.instanceId);
    if (!earlier || (earlier.configurations === undefined && item.configurations !== undefined))
      chosen.set(item.instanceId, item);
  }
  return [...result, ...chosen.values()];
}

function diskIdOf(hostResource: string): { disk?: string; file?: string } {
  const m = /(?:^|[:/])(disk|file)\/([^/]+)$/.exec(hostResource.trim());
  if (!m) return {};
  return m[1] === 'disk' ? { disk: m[2] } : { file: m[2] };
}

/** CPUs, memory and the disks its drives refer to, of one VM in one deployment option. */
function vmResources(
  env: OvfEnvelope,
  vs: OvfVirtualSystem,
  configuration: string | undefined,
): Resources & { diskRefs: number } {
  const items = itemsFor(vs.hardware.items, configuration);
  const cpus = items
    .filter((i) => i.resourceType === ResourceType.Processor)
    .reduce((n, i) => n + (count(i.virtualQuantity, 'virtual CPU count') ?? 0), 0);
  const memoryBytes = items
    .filter((i) => i.resourceType === ResourceType.Memory)
    .reduce((n, i) => n + (bytes(i.virtualQuantity, i.allocationUnits, 'memory', MiB) ?? 0), 0);
  let diskBytes = 0;
  const referenced = items.filter((i) => i.resourceType === ResourceType.DiskDrive).flatMap((i) => i.hostResources.map(diskIdOf));
  for (const ref of referenced) {
    if (ref.disk) diskBytes += env.disks.find((d) => d.diskId === ref.disk)?.capacityBytes ?? 0;
    else if (ref.file) diskBytes += env.files.find((f) => f.id === ref.file)?.size ?? 0;
  }
  return { cpus, memoryMiB: Math.ceil(memoryBytes / MiB), diskBytes, diskRefs: referenced.length };
}

/** The envelope's total; when no drive refers to any disk, every disk of the DiskSection counts once. */
function envelopeResources(env: OvfEnvelope, configuration: string | undefined): Resources {
  const vms = env.virtualSystems.map((vs) => vmResources(env, vs, configuration));
  const total = { cpus: 0, memoryMiB: 0, diskBytes: 0 };
  for (const r of vms) {
    total.cpus += r.cpus;
    total.memoryMiB += r.memoryMiB;
    total.diskBytes += r.diskBytes;
  }
  if (vms.every((r) => r.diskRefs === 0)) total.diskBytes = env.disks.reduce((n, d) => n + (d.capacityBytes ?? 0), 0);
  return total;
}

function plainResources({ cpus, memoryMiB, diskBytes }: Resources): Resources {
  return { cpus, memoryMiB, diskBytes };
}

function mainProduct(vs: OvfVirtualSystem): OvfProduct | undefined {
  return vs.products.find((p) => !p.className && p.product) ?? vs.products.find((p) => p.product || p.version) ?? vs.products[0];
}

export function describeOvf(env: OvfEnvelope): OvfMetadata {
  const defaultOption = env.deploymentOptions.find((o) => o.default) ?? env.deploymentOptions[0];
  const resources = envelopeResources(env, defaultOption?.id);
  const first = env.virtualSystems[0];
  const product = env.virtualSystems.map(mainProduct).find((p) => p?.product || p?.version);
  const items = env.virtualSystems.flatMap((vs) => itemsFor(vs.hardware.items, defaultOption?.id));
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
      file: env.files.find((f) => f.id === d.fileRef)?.href,
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
      resources: envelopeResources(env, o.id),
    })),
    properties: env.virtualSystems
      .flatMap((vs) => vs.products.flatMap((p) => p.properties.map((prop) => prop.key)))
      .filter(Boolean),
    eula: env.virtualSystems.some((vs) => vs.eula),
    virtualSystems:
      env.virtualSystems.length > 1
        ? env.virtualSystems.map((vs) => ({
            id: vs.id,
            name: vs.name,
            os: vs.os,
            resources: plainResources(vmResources(env, vs, defaultOption?.id)),
          }))
        : undefined,
    resources,
  };
}
