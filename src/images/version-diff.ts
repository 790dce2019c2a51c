import type { ImageMetadata } from './inspect';
import type { OvfMetadata, OvfPropertyNote } from './ovf/metadata';

/**
 * What differs between the metadata of two image versions (`vmhub diff`): the virtual hardware, the
 * disks, the networks and the OVF properties. Pure: it reads two catalog records' metadata and nothing else.
 */
export interface MetadataDiff {
  /** The fields of the hardware whose values differ; `hardwareSame` the number that do not. */
  hardware: Array<HardwareChange>;
  hardwareSame: number;
  disks: ListDiff<DiskNote> & { resized: Array<{ diskId: string; a: string; b: string }> };
  networks: ListDiff<string>;
  /** Absent when a side's record predates the properties' defaults being kept (`notRecorded` names it). */
  properties: (ListDiff<PropertyNote> & { changed: PropertyChange[] }) | { notRecorded: Array<'a' | 'b'> };
}

export interface ListDiff<T> {
  added: T[];
  removed: T[];
  /** How many are in both, alike. */
  same: number;
}

export type HardwareField = 'osType' | 'virtualSystemType' | 'firmware' | 'cpus' | 'coresPerSocket' | 'memoryMiB';

export interface HardwareChange {
  field: HardwareField;
  a?: string | number;
  b?: string | number;
}

export interface DiskNote {
  diskId: string;
  file?: string;
  /** The capacity: bytes, or the `${property}` it is resolved from at deployment. */
  capacity: string;
}

export interface PropertyNote {
  id: string;
  /** The default as recorded: the value, `sha256:<hex> (<n> characters)` for a long one, or none. */
  default?: string;
  userConfigurable: boolean;
}

export interface PropertyChange {
  id: string;
  a: PropertyNote;
  b: PropertyNote;
}

type Ovf = Omit<OvfMetadata, 'kind'>;

/** The OVF facts of a version's metadata; an image without a descriptor (an ISO) has none. */
function ovfOf(m: ImageMetadata | undefined): Ovf | undefined {
  return m && m.kind !== 'iso' ? m : undefined;
}

function hardwareOf(m: Ovf | undefined): Record<HardwareField, string | number | undefined> {
  return {
    osType: m?.os?.osType,
    virtualSystemType: m?.hardwareFamily.join(' ') || undefined,
    firmware: m?.firmware,
    cpus: m?.cpus,
    coresPerSocket: m?.coresPerSocket,
    memoryMiB: m?.memoryMiB,
  };
}

function diffHardware(a: Ovf | undefined, b: Ovf | undefined): Pick<MetadataDiff, 'hardware' | 'hardwareSame'> {
  const [ha, hb] = [hardwareOf(a), hardwareOf(b)];
  const fields = Object.keys(ha) as HardwareField[];
  const hardware = fields.filter((f) => ha[f] !== hb[f]).map((field) => ({ field, a: ha[field], b: hb[field] }));
  return { hardware, hardwareSame: fields.length - hardware.length };
}

/** Items of two lists matched by key: those only in b, only in a, and the pairs in both. */
function matchBy<T>(a: readonly T[], b: readonly T[], key: (t: T) => string) {
  const inA = new Map(a.map((t) => [key(t), t]));
  const inB = new Map(b.map((t) => [key(t), t]));
  return {
    added: [...inB.values()].filter((t) => !inA.has(key(t))),
    removed: [...inA.values()].filter((t) => !inB.has(key(t))),
    both: [...inB.values()].filter((t) => inA.has(key(t))).map((t) => [inA.get(key(t))!, t] as const),
  };
}

function disksOf(m: Ovf | undefined): DiskNote[] {
  return (m?.disks ?? []).map((d) => ({
    diskId: d.diskId,
    ...(d.file !== undefined ? { file: d.file } : {}),
    capacity: d.capacityBytes !== undefined ? String(d.capacityBytes) : (d.capacityUnresolved ?? 'unknown'),
  }));
}

function diffDisks(a: Ovf | undefined, b: Ovf | undefined): MetadataDiff['disks'] {
  const { added, removed, both } = matchBy(disksOf(a), disksOf(b), (d) => d.diskId);
  const resized = both
    .filter(([x, y]) => x.capacity !== y.capacity)
    .map(([x, y]) => ({ diskId: y.diskId, a: x.capacity, b: y.capacity }));
  return { added, removed, resized, same: both.length - resized.length };
}

function diffNetworks(a: Ovf | undefined, b: Ovf | undefined): ListDiff<string> {
  const { added, removed, both } = matchBy(
    (a?.networks ?? []).map((n) => n.name),
    (b?.networks ?? []).map((n) => n.name),
    (n) => n,
  );
  return { added, removed, same: both.length };
}

function propertyOf(p: OvfPropertyNote): PropertyNote {
  const value = p.password
    ? 'password, not recorded'
    : p.valueSha256 !== undefined
      ? `sha256:${p.valueSha256} (${p.valueLength} characters)`
      : p.value;
  return { id: p.id, ...(value !== undefined ? { default: value } : {}), userConfigurable: p.userConfigurable };
}

/** A side's properties (none without a descriptor); undefined when its record did not keep them. */
function propertiesOf(m: ImageMetadata | undefined): PropertyNote[] | undefined {
  if (!m) return undefined;
  const ovf = ovfOf(m);
  if (!ovf) return [];
  return ovf.ovfProperties?.map(propertyOf);
}

function diffProperties(a: ImageMetadata | undefined, b: ImageMetadata | undefined): MetadataDiff['properties'] {
  const [pa, pb] = [propertiesOf(a), propertiesOf(b)];
  if (!pa || !pb) return { notRecorded: [...(pa ? [] : ['a' as const]), ...(pb ? [] : ['b' as const])] };
  const { added, removed, both } = matchBy(pa, pb, (p) => p.id);
  const changed = both
    .filter(([x, y]) => x.default !== y.default || x.userConfigurable !== y.userConfigurable)
    .map(([x, y]) => ({ id: y.id, a: x, b: y }));
  return { added, removed, changed, same: both.length - changed.length };
}

export function diffMetadata(a: ImageMetadata | undefined, b: ImageMetadata | undefined): MetadataDiff {
  const [oa, ob] = [ovfOf(a), ovfOf(b)];
  return {
    ...diffHardware(oa, ob),
    disks: diffDisks(oa, ob),
    networks: diffNetworks(oa, ob),
    properties: diffProperties(a, b),
  };
}
