import { VmhubError } from './errors';
import type { Capacity } from '../topology/topology';

/** What a version needs, compared with an SDDC's capacity (disk in bytes, memory in MiB). */
export interface Requirements {
  cpus?: number;
  memoryMiB?: number;
  diskBytes?: number;
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
const KiB = 2 ** 10;
const MiB = 2 ** 20;
const GiB = 2 ** 30;
const TiB = 2 ** 40;

/** 18022400 → "17.2 MiB" */
export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(value >= 100 ? 0 : 1)} ${UNITS[unit]}`;
}

/** Memory in MiB as a person reads it: 524288 → "512 GiB". */
export function formatMiB(mib: number): string {
  return formatBytes(mib * 2 ** 20).replace(/\.0 /, ' ');
}

/**
 * A count and its noun, agreeing: `1 block`, `2 blocks`, `1 copy` / `3 copies` (the plural given when it is
 * not the noun plus "s"). Every count the CLI and the Web UI show goes through here.
 */
export function plural(count: number, noun: string, pluralNoun = `${noun}s`): string {
  return `${count} ${count === 1 ? noun : pluralNoun}`;
}

/** An SDDC's capacity as people read it: `64 CPUs, 512 GiB memory, 4.0 TiB disk`. */
export function formatCapacity(c: Capacity): string {
  return `${plural(c.cpus, 'CPU')}, ${formatBytes(c.memoryMiB * MiB)} memory, ${formatBytes(c.diskGiB * GiB)} disk`;
}

/** Binary units throughout, as hypervisors count: `GB` and `G` mean GiB. */
const SIZE_UNITS: Record<string, number> = {
  b: 1,
  k: KiB,
  kb: KiB,
  kib: KiB,
  m: MiB,
  mb: MiB,
  mib: MiB,
  g: GiB,
  gb: GiB,
  gib: GiB,
  t: TiB,
  tb: TiB,
  tib: TiB,
};

/** What every size message lists, so an operator sees the accepted forms where the mistake is reported. */
const SIZE_FORMS =
  'a number with a unit (B, KiB, MiB, GiB, TiB; K, M, G, T and KB, MB, GB, TB mean the same), or a plain number of GiB';

/**
 * A size as operators write it → bytes: `256GiB`, `512 MiB`, `2T`, `1.5TiB`, `100gb`; a plain number
 * (`256`) means GiB, because memory and disk are sized in GiB and nobody means 256 bytes. Negative,
 * zero and non-numeric sizes fail with `InvalidInput`; `field` names the option in the message.
 */
export function parseSize(text: string, field = 'size'): number {
  const m = /^\s*([+-]?\d*\.?\d+)\s*([a-z]*)\s*$/i.exec(text);
  const sample = /disk/.test(field) ? '4TiB' : '256GiB';
  const fail = (why: string): never => {
    throw new VmhubError('InvalidInput', `${given(field, text)} ${why}: give ${SIZE_FORMS}, e.g. ${example(field, sample)}`);
  };
  if (!m) return fail('is not a size');
  const unit = m[2] === '' ? GiB : SIZE_UNITS[m[2].toLowerCase()];
  if (unit === undefined) return fail(`has an unknown unit "${m[2]}"`);
  const value = Number(m[1]);
  if (value <= 0) return fail('must be more than zero');
  return Math.round(value * unit);
}

/**
 * A field is an option (`--memory`), a key of one (`--fits memory=`) or a plain name (`size`): the value
 * is shown and exemplified the way it is written there.
 */
function given(field: string, text: string): string {
  return field.endsWith('=') ? `${field}${JSON.stringify(text)}` : `${field} ${JSON.stringify(text)}`;
}

function example(field: string, value: string): string {
  if (field.endsWith('=')) return `${field}${value}`;
  return field.startsWith('--') ? `${field} ${value}` : value;
}

/** `--memory`: a size, kept in whole MiB (at least 1). */
export function parseMemoryMiB(text: string, field = '--memory'): number {
  const mib = Math.floor(parseSize(text, field) / MiB);
  if (mib < 1) throw new VmhubError('InvalidInput', `${given(field, text)} is less than 1 MiB, e.g. ${example(field, '256GiB')}`);
  return mib;
}

/** `--disk`: a size, kept in whole GiB (at least 1). */
export function parseDiskGiB(text: string, field = '--disk'): number {
  const gib = Math.floor(parseSize(text, field) / GiB);
  if (gib < 1) throw new VmhubError('InvalidInput', `${given(field, text)} is less than 1 GiB, e.g. ${example(field, '4TiB')}`);
  return gib;
}

/** `--cpus`: a positive whole number of CPUs. */
export function parseCpus(text: string, field = '--cpus'): number {
  const trimmed = text.trim();
  if (!/^[+-]?\d*\.?\d+$/.test(trimmed)) {
    throw new VmhubError(
      'InvalidInput',
      `${given(field, text)} is not a number: give a whole number of CPUs, e.g. ${example(field, '16')}`,
    );
  }
  const n = Number(trimmed);
  if (!Number.isInteger(n) || n <= 0) {
    throw new VmhubError(
      'InvalidInput',
      `${given(field, text)} must be a whole number of CPUs above zero, e.g. ${example(field, '16')}`,
    );
  }
  return n;
}

/** An SDDC's capacity options as text (`--cpus`, `--memory`, `--disk`), each optional: the fields given, parsed. */
export function parseCapacity(options: { cpus?: string; memory?: string; disk?: string }): Partial<Capacity> {
  const capacity: Partial<Capacity> = {};
  if (options.cpus !== undefined) capacity.cpus = parseCpus(options.cpus);
  if (options.memory !== undefined) capacity.memoryMiB = parseMemoryMiB(options.memory);
  if (options.disk !== undefined) capacity.diskGiB = parseDiskGiB(options.disk);
  return capacity;
}

/**
 * `--fits cpus=4,memory=8GiB,disk=100GiB` → requirements in CPUs, MiB and bytes; any subset of the
 * keys, each at most once. Sizes as {@link parseSize} (a plain number is GiB).
 */
export function parseFits(text: string, field = '--fits'): Requirements {
  const req: Requirements = {};
  const fail = (why: string): never => {
    throw new VmhubError(
      'InvalidInput',
      `${field} ${JSON.stringify(text)}: ${why}; e.g. ${field} cpus=4,memory=8GiB,disk=100GiB`,
    );
  };
  const parts = text.split(',').map((p) => p.trim());
  if (parts.every((p) => p === '')) fail('names no requirement');
  const seen = new Set<string>();
  for (const part of parts.filter(Boolean)) {
    const eq = part.indexOf('=');
    if (eq <= 0) fail(`"${part}" is not key=value`);
    const key = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (seen.has(key)) fail(`${key} is given twice`);
    seen.add(key);
    if (key === 'cpus') req.cpus = parseCpus(value, `${field} cpus=`);
    else if (key === 'memory') req.memoryMiB = parseMemoryMiB(value, `${field} memory=`);
    else if (key === 'disk') req.diskBytes = parseSize(value, `${field} disk=`);
    else fail(`it knows cpus, memory and disk, not "${key}"`);
  }
  return req;
}
