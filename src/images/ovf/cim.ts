import { VmhubError } from '../../shared/errors';

/** CIM_ResourceAllocationSettingData ResourceType codes (DSP1041) that vmhub reads. */
export const ResourceType = {
  Processor: 3,
  Memory: 4,
  EthernetAdapter: 10,
  CdDrive: 15,
  DvdDrive: 16,
  DiskDrive: 17,
} as const;

/** Named units as exporters write them, looked up as own entries only: no name from an image reaches a prototype. */
const NAMED_UNITS = new Map<string, number>(
  ['kilo', 'mega', 'giga', 'tera'].flatMap((p, i): Array<[string, number]> => {
    const m = 2 ** (10 * (i + 1));
    return [
      [`${p}bytes`, m],
      [`${p[0]}b`, m],
      [`${p[0]}ib`, m],
    ];
  }),
);

/**
 * Programmatic units of DSP0004 as exporters write them: `byte * 2^20`, `byte*2^30`, `MegaBytes`, `byte`.
 * Undefined for units that are unknown or give no finite multiplier of at least one byte (`byte*2^9999`,
 * `byte*0^1`): a NaN or infinite size would slip past every comparison that bounds it.
 */
export function byteMultiplier(units: string | undefined, fallback = 1): number | undefined {
  if (units === undefined || units.trim() === '') return fallback;
  const u = units.replace(/\s+/g, '').toLowerCase();
  const power = /^bytes?(?:\*(\d+)\^(\d+))?$/.exec(u);
  const m = power ? (power[1] ? Number(power[1]) ** Number(power[2]) : 1) : NAMED_UNITS.get(u);
  return m !== undefined && Number.isFinite(m) && m >= 1 ? m : undefined;
}

/** The most any single quantity may claim before it is treated as absurd: 1 PiB, or a million CPUs. */
const MAX_BYTES = 2 ** 50;
const MAX_COUNT = 1_000_000;

/** A whole, non-negative quantity from the descriptor; anything else makes the image invalid. */
export function quantity(value: string | undefined, what: string): number | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  const v = value.trim();
  if (!/^-?\d+$/.test(v)) throw new VmhubError('InvalidImage', `${what} "${v.slice(0, 40)}" is not a whole number`);
  const n = Number(v);
  if (n < 0) throw new VmhubError('InvalidImage', `${what} is negative (${v})`);
  if (!Number.isSafeInteger(n)) throw new VmhubError('InvalidImage', `${what} is absurdly large (${v.slice(0, 40)})`);
  return n;
}

export function count(value: string | undefined, what: string): number | undefined {
  const n = quantity(value, what);
  if (n !== undefined && n > MAX_COUNT) throw new VmhubError('InvalidImage', `${what} is absurdly large (${n})`);
  return n;
}

/** A size in bytes from a quantity and its units; undefined when the units are unknown. */
export function bytes(
  value: string | undefined,
  units: string | undefined,
  what: string,
  defaultMultiplier = 1,
): number | undefined {
  const n = quantity(value, what);
  if (n === undefined) return undefined;
  const m = byteMultiplier(units, defaultMultiplier);
  if (m === undefined) throw new VmhubError('InvalidImage', `${what} has unknown units "${units}"`);
  const total = n * m;
  if (!Number.isFinite(total) || total > MAX_BYTES)
    throw new VmhubError('InvalidImage', `${what} is absurdly large (${n} × ${m} bytes)`);
  return total;
}
