import type { Command } from 'commander';
import { validateKeep } from '../lifecycle/retention';
import type { RetentionPolicy } from '../catalog/retention-records';
import { validateImageName } from '../shared/names';
import { ensureSchedules, RETENTION_SCHEDULE_ID } from '../temporal/schedules';
import { requireKnownImage } from './checks';
import { requiredOption } from './command';
import type { CliDeps } from './deps';
import { print } from './output';
import * as apply from './retention-apply';
import { plural } from '../shared/units';

export type RetentionOptions =
  { action: 'set'; image: string; keep: number } | { action: 'show'; image?: string } | { action: 'clear'; image: string };

export interface RetentionCliResult {
  action: RetentionOptions['action'];
  /** The policies after the command (`show`: the ones asked about). */
  policies: RetentionPolicy[];
  /** `clear`: whether there was a policy to clear; null otherwise. */
  cleared: boolean | null;
  /** The schedule that applies the policies. */
  schedule: string;
}

export async function run(options: RetentionOptions, deps: CliDeps): Promise<RetentionCliResult> {
  const catalog = await deps.catalog();
  const base = { action: options.action, cleared: null, schedule: RETENTION_SCHEDULE_ID };
  if (options.action === 'set') {
    await requireKnownImage(catalog, options.image, 'a retention policy');
    const policy = await catalog.retention.set({ image: options.image, keep: options.keep });
    // A policy nobody applies would be a promise broken: the schedule is made sure of here too.
    await ensureSchedules(await deps.temporal(), deps.config);
    return { ...base, policies: [policy] };
  }
  if (options.action === 'clear') {
    const cleared = await catalog.retention.clear(options.image);
    return { ...base, cleared, policies: [] };
  }
  const policies = options.image
    ? [await catalog.retention.get(options.image)].filter((p) => p !== null)
    : await catalog.retention.list();
  return { ...base, policies };
}

export function renderText(r: RetentionCliResult): string[] {
  if (r.action === 'clear') return [r.cleared ? 'retention policy cleared' : 'there was no retention policy to clear'];
  if (r.policies.length === 0) return ['no retention policy'];
  return [
    ...r.policies.map(
      (p) => `${p.image.padEnd(24)} keeps the newest ${plural(p.keep, 'version')} (and every version an SDDC holds)`,
    ),
    `applied by schedule ${r.schedule}`,
  ];
}

export function register(program: Command, deps: CliDeps): void {
  const retention = program
    .command('retention')
    .description('per-image retention: a schedule retires the versions beyond the newest N that no SDDC holds');
  const json = '--json';
  retention
    .command('set')
    .description('keep the newest N versions of an image')
    .argument('<image>')
    .addOption(requiredOption('--keep <n>', 'how many versions to keep (1 or more)'))
    .option(json, 'print one JSON document on stdout')
    .addHelpText('after', '\nExample:\n  vmhub retention set ubuntu-app --keep 3')
    .action(async (image: string, opts: { keep: string; json?: boolean }) => {
      const keep = validateKeep(/^\d+$/.test(opts.keep) ? Number(opts.keep) : opts.keep);
      const result = await run({ action: 'set', image: validateImageName(image), keep }, deps);
      print(deps.io, Boolean(opts.json), result, () => renderText(result));
    });
  retention
    .command('show')
    .description("an image's retention policy, or every one")
    .argument('[image]')
    .option(json, 'print one JSON document on stdout')
    .action(async (image: string | undefined, opts: { json?: boolean }) => {
      const result = await run({ action: 'show', image: image === undefined ? undefined : validateImageName(image) }, deps);
      print(deps.io, Boolean(opts.json), result, () => renderText(result));
    });
  retention
    .command('clear')
    .description("remove an image's retention policy: no version of it is retired by schedule any more")
    .argument('<image>')
    .option(json, 'print one JSON document on stdout')
    .action(async (image: string, opts: { json?: boolean }) => {
      const result = await run({ action: 'clear', image: validateImageName(image) }, deps);
      print(deps.io, Boolean(opts.json), result, () => renderText(result));
    });
  apply.register(retention, deps);
}
