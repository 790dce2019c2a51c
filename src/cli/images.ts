import type { Command } from 'commander';
import type { ImageVersionRecord, Requirements } from '../catalog/catalog';
import { VmhubError } from '../errors';
import { lifecycleMark } from '../lifecycle/deprecation';
import { formatBytes, parseSize } from '../units';
import { checkImageName } from './checks';
import { examples, jsonOption } from './command';
import type { CliDeps } from './deps';
import { formatMiB, print, table } from './output';

export interface ImagesOptions {
  image?: string;
  fits?: Requirements;
  os?: string;
}

export type ImagesResult = ImageVersionRecord[];

/** `cpus=4,memory=8GiB,disk=100GiB` → requirements in CPUs, MiB and bytes. */
export function parseFits(text: string): Requirements {
  const req: Requirements = {};
  for (const part of text.split(',').filter(Boolean)) {
    const [key, value] = part.split('=');
    const bad = (why: string) =>
      new VmhubError('InvalidInput', `--fits ${text}: ${why}; e.g. --fits cpus=4,memory=8GiB,disk=100GiB`);
    if (value === undefined || value === '') throw bad(`"${part}" is not key=value`);
    if (key === 'cpus') {
      if (!/^[1-9]\d*$/.test(value)) throw bad(`cpus must be a whole number of 1 or more, got "${value}"`);
      req.cpus = Number(value);
    } else if (key === 'memory' || key === 'disk') {
      if (!/[a-z]$/i.test(value)) throw bad(`${key} ${value} needs a unit, e.g. ${value}GiB`);
      let bytes: number;
      try {
        bytes = parseSize(value);
      } catch {
        throw bad(`"${value}" is not a size like 8GiB or 512MiB`);
      }
      if (key === 'memory') req.memoryMiB = Math.floor(bytes / 2 ** 20);
      else req.diskBytes = bytes;
    } else throw bad(`it knows cpus, memory and disk, not "${key}"`);
  }
  return req;
}

/** Filters combine: a version is listed only when it passes every one given. */
export async function run(options: ImagesOptions, deps: CliDeps): Promise<ImagesResult> {
  if (options.image !== undefined) checkImageName(options.image);
  const catalog = await deps.catalog();
  return options.fits || options.os
    ? catalog.findAvailable({ image: options.image, fits: options.fits, osType: options.os })
    : catalog.listVersions(options.image);
}

export function renderText(records: ImagesResult): string[] {
  if (records.length === 0) return ['no versions'];
  const now = new Date();
  return table(
    ['IMAGE', 'VERSION', 'STATUS', 'FORMAT', 'SIZE', 'NEEDS', 'NOTE'],
    records.map((r) => {
      const res = r.metadata && 'resources' in r.metadata ? r.metadata.resources : undefined;
      return [
        r.image,
        r.version,
        r.status,
        r.format,
        formatBytes(r.sizeBytes),
        res ? `${res.cpus} CPU, ${formatMiB(res.memoryMiB)}, ${formatBytes(res.diskBytes)} disk` : '-',
        lifecycleMark(r, now),
      ];
    }),
  );
}

export function register(program: Command, deps: CliDeps): void {
  program
    .command('images')
    .description('versions in the catalog; the filters given combine')
    .option('--image <name>', 'only this image')
    .option('--fits <capacity>', 'only available versions that fit, e.g. cpus=4,memory=8GiB,disk=100GiB')
    .option('--os <osType>', 'only available versions with this guest OS type, e.g. ubuntu64Guest')
    .addOption(jsonOption())
    .addHelpText(
      'after',
      examples('vmhub images', 'vmhub images --image ubuntu-app', 'vmhub images --fits cpus=4,memory=8GiB --os ubuntu64Guest'),
    )
    .action(async (opts: { image?: string; fits?: string; os?: string; json?: boolean }) => {
      const result = await run(
        { image: opts.image, fits: opts.fits === undefined ? undefined : parseFits(opts.fits), os: opts.os },
        deps,
      );
      print(deps.io, Boolean(opts.json), result, () => renderText(result));
    });
}
