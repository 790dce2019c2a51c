import type { DiskNote, HardwareChange, MetadataDiff, PropertyNote } from '../images/version-diff';
import { formatBytes, formatMiB, plural } from '../shared/units';

/**
 * `vmhub diff`'s sections for humans: one line `same (…)` for a section with no difference, else a line
 * per difference, `+` only in b, `-` only in a, `~` in both but changed (a → b).
 */
const LABEL = 14;
const label = (name: string) => name.padEnd(LABEL);

const FIELD_NAMES: Record<HardwareChange['field'], string> = {
  osType: 'guest OS',
  virtualSystemType: 'virtual system type',
  firmware: 'firmware',
  cpus: 'CPUs',
  coresPerSocket: 'cores per socket',
  memoryMiB: 'memory',
};

function hardwareValue(field: HardwareChange['field'], v: string | number | undefined): string {
  if (v === undefined) return 'none';
  return field === 'memoryMiB' && typeof v === 'number' ? formatMiB(v) : String(v);
}

/** A section's lines: its name on the first, then its differences, or `same` when there are none. */
function section(name: string, changes: string[], same: string): string[] {
  if (changes.length === 0) return [`${label(name)} ${same}`];
  return changes.map((c, i) => `${label(i === 0 ? name : '')} ${c}`);
}

function alike(count: number, noun: string, pluralNoun?: string): string[] {
  return count > 0 ? [`(${plural(count, `other ${noun}`, pluralNoun && `other ${pluralNoun}`)} alike)`] : [];
}

function capacity(c: string): string {
  return /^\d+$/.test(c) ? formatBytes(Number(c)) : c;
}

function disk(d: DiskNote): string {
  return `${d.diskId}${d.file ? ` (${d.file})` : ''} ${capacity(d.capacity)}`;
}

function property(p: PropertyNote): string {
  const value = p.default === undefined ? 'no default' : `default ${JSON.stringify(p.default)}`;
  return `${value}${p.userConfigurable ? ', user-configurable' : ''}`;
}

function propertyLines(p: MetadataDiff['properties']): string[] {
  if ('notRecorded' in p) {
    return [`${label('properties')} not recorded for ${p.notRecorded.join(' and ')} (published before vmhub kept them)`];
  }
  const changes = [
    ...p.added.map((x) => `+ ${x.id}: ${property(x)}`),
    ...p.removed.map((x) => `- ${x.id}: ${property(x)}`),
    ...p.changed.map((x) => `~ ${x.id}: ${property(x.a)} → ${property(x.b)}`),
  ];
  return section(
    'properties',
    changes.length > 0 ? [...changes, ...alike(p.same, 'property', 'properties')] : [],
    `same (${plural(p.same, 'property', 'properties')})`,
  );
}

export function renderMetadataDiff(m: MetadataDiff): string[] {
  const hardware = m.hardware.map(
    (c) => `~ ${FIELD_NAMES[c.field]}: ${hardwareValue(c.field, c.a)} → ${hardwareValue(c.field, c.b)}`,
  );
  const disks = [
    ...m.disks.added.map((d) => `+ ${disk(d)}`),
    ...m.disks.removed.map((d) => `- ${disk(d)}`),
    ...m.disks.resized.map((d) => `~ ${d.diskId}: ${capacity(d.a)} → ${capacity(d.b)}`),
  ];
  const networks = [...m.networks.added.map((n) => `+ ${n}`), ...m.networks.removed.map((n) => `- ${n}`)];
  return [
    ...section('hardware', hardware.length > 0 ? [...hardware, ...alike(m.hardwareSame, 'field')] : [], 'same'),
    ...section(
      'disks',
      disks.length > 0 ? [...disks, ...alike(m.disks.same, 'disk')] : [],
      `same (${plural(m.disks.same, 'disk')})`,
    ),
    ...section(
      'networks',
      networks.length > 0 ? [...networks, ...alike(m.networks.same, 'network')] : [],
      `same (${plural(m.networks.same, 'network')})`,
    ),
    ...propertyLines(m.properties),
  ];
}
