import type { Command } from 'commander';
import { VmhubError } from '../shared/errors';
import { pastEndOfLife } from '../lifecycle/deprecation';
import { parseIsoDateTime } from '../shared/dates';
import { LATEST } from '../shared/names';
import { parseRef } from './checks';
import type { CliDeps } from './deps';
import { print } from './output';

export interface DeprecateOptions {
  image: string;
  version: string;
  message?: string;
  endOfLife?: Date;
  /** Take the deprecation back: the version counts for `latest` again. */
  undo: boolean;
}

export interface DeprecateResult {
  image: string;
  version: string;
  status: 'deprecated' | 'end-of-life' | 'current';
  message: string | null;
  endOfLife: string | null;
  /** What `latest` resolves to now. */
  latest: string | null;
}

export async function run(options: DeprecateOptions, deps: CliDeps): Promise<DeprecateResult> {
  const catalog = await deps.catalog();
  const { image, version } = options;
  const record = options.undo
    ? await catalog.versions.undeprecate(image, version)
    : await catalog.versions.deprecate(image, version, { message: options.message, endOfLife: options.endOfLife });
  const d = record.deprecation;
  return {
    image,
    version,
    status: !d ? 'current' : pastEndOfLife(d, new Date()) ? 'end-of-life' : 'deprecated',
    message: d?.message ?? null,
    endOfLife: d?.endOfLife?.toISOString() ?? null,
    latest: (await catalog.versions.resolve(image, LATEST))?.version ?? null,
  };
}

export function renderText(r: DeprecateResult): string[] {
  const ref = `${r.image}@${r.version}`;
  const head =
    r.status === 'current'
      ? `${ref} is no longer deprecated`
      : `${ref} is ${r.status === 'end-of-life' ? 'past its end of life' : 'deprecated'}` +
        (r.endOfLife ? ` (end of life ${r.endOfLife})` : '') +
        (r.message ? `: ${r.message}` : '');
  return [head, `${r.image}@latest is ${r.latest ?? 'none (no current available version)'}`];
}

export function register(program: Command, deps: CliDeps): void {
  program
    .command('deprecate')
    .description(
      'deprecate a version: it leaves `latest`, and past its end of life a deploy refuses it (ImageRetired) unless --force',
    )
    .argument('<ref>', 'image@version')
    .option('--message <text>', 'why, and what to use instead')
    .option(
      '--end-of-life <date>',
      'from this ISO 8601 date, or date and time with a zone (e.g. 2027-01-31 or 2027-01-31T12:00:00Z), deploys refuse the version',
    )
    .option('--undo', 'take the deprecation back')
    .option('--json', 'print one JSON document on stdout')
    .addHelpText(
      'after',
      '\nExamples:\n  vmhub deprecate ubuntu-app@1.2.0 --message "use 1.3.0" --end-of-life 2027-01-31\n  vmhub deprecate ubuntu-app@1.2.0 --undo',
    )
    .action(async (ref: string, opts: { message?: string; endOfLife?: string; undo?: boolean; json?: boolean }) => {
      if (opts.undo && (opts.message !== undefined || opts.endOfLife !== undefined)) {
        throw new VmhubError(
          'InvalidInput',
          '--undo takes the deprecation back: it goes with neither --message nor --end-of-life',
        );
      }
      const options: DeprecateOptions = {
        ...parseRef(ref, false),
        message: opts.message,
        endOfLife: opts.endOfLife === undefined ? undefined : parseIsoDateTime(opts.endOfLife, '--end-of-life'),
        undo: Boolean(opts.undo),
      };
      const result = await run(options, deps);
      print(deps.io, Boolean(opts.json), result, () => renderText(result));
    });
}
