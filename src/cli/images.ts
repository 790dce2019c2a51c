import type { Command } from 'commander';
import type { ImageVersionRecord } from '../catalog/image-records';
import type { Requirements } from '../shared/units';
import { lifecycleMark } from '../lifecycle/deprecation';
import { validateImageName } from '../shared/names';
import { formatBytes, formatMiB, parseFits, plural } from '../shared/units';
import { examples, jsonOption } from './command';
import type { CliDeps } from './deps';
import { print, table } from './output';

export interface ImagesOptions {
  image?: string;
  fits?: Requirements;
  os?: string;
}

export type ImagesResult = ImageVersionRecord[];

/** Filters combine: a version is listed only when it passes every one given. */
export async function run(options: ImagesOptions, deps: CliDeps): Promise<ImagesResult> {
  if (options.image !== undefined) validateImageName(options.image, '--image');
  const { image, fits, os } = options;
  // Whether a version fits or runs an OS matters for a deploy, and only an available version deploys.
  const status = fits || os ? 'available' : undefined;
  return (await deps.catalog()).versions.find({ image, osType: os, fits, status });
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
        res ? `${plural(res.cpus, 'CPU')}, ${formatMiB(res.memoryMiB)}, ${formatBytes(res.diskBytes)} disk` : '-',
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
    .option(
      '--fits <capacity>',
      'only available versions that fit, e.g. cpus=4,memory=8GiB,disk=100GiB (any of the three; a plain size is GiB)',
    )
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
