import type { Command } from 'commander';
import type { SddcRecord } from '../catalog/sddc-records';
import { ALL_SDDCS, validateSddcName } from '../shared/names';
import { describeOvfPolicy } from '../shared/ovf-policy';
import { describeTarget } from '../shared/sddc-target';
import { formatCapacity } from '../shared/units';
import { examples, jsonOption } from './command';
import type { CliDeps } from './deps';
import { print } from './output';
import { describeLabels, sddcGroup } from './sddc';

/** One registered SDDC; for "all", every one (a list, as `sddc list --json` gives). */
export async function run(options: { name: string }, deps: CliDeps): Promise<SddcRecord | SddcRecord[]> {
  if (options.name === ALL_SDDCS) return (await deps.catalog()).sddcs.list();
  return (await deps.catalog()).sddcs.require(validateSddcName(options.name, 'SDDC'));
}

function recordLines(r: SddcRecord): string[] {
  return [
    `name        ${r.name}`,
    `data center ${r.dataCenter}`,
    `task queue  ${r.taskQueue}`,
    `capacity    ${formatCapacity(r.capacity)}`,
    `deploys to  ${describeTarget(r.target)}`,
    `OVF policy  ${describeOvfPolicy(r.ovfPolicy)}`,
    `labels      ${describeLabels(r.labels)}`,
    `registered  ${r.createdAt.toISOString()}`,
    ...(r.updatedAt ? [`updated     ${r.updatedAt.toISOString()}`] : []),
  ];
}

export function renderText(r: SddcRecord | SddcRecord[]): string[] {
  if (!Array.isArray(r)) return recordLines(r);
  if (r.length === 0) return ['no SDDC is registered'];
  return r.flatMap((s, i) => [...(i > 0 ? [''] : []), ...recordLines(s)]);
}

export function register(program: Command, deps: CliDeps): void {
  sddcGroup(program)
    .command('show')
    .description('one registered SDDC, or every one ("all")')
    .argument('<name>', 'a registered SDDC, or all')
    .addOption(jsonOption())
    .addHelpText('after', examples('vmhub sddc show east-3', 'vmhub sddc show all'))
    .action(async (name: string, opts: { json?: boolean }) => {
      const result = await run({ name }, deps);
      print(deps.io, Boolean(opts.json), result, () => renderText(result));
    });
}
