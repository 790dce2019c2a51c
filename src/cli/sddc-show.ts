import type { Command } from 'commander';
import type { SddcRecord } from '../catalog/sddc-records';
import { describeTarget } from '../shared/sddc-target';
import { formatCapacity } from '../shared/units';
import { examples, jsonOption } from './command';
import type { CliDeps } from './deps';
import { print } from './output';
import { sddcGroup } from './sddc';

export async function run(options: { name: string }, deps: CliDeps): Promise<SddcRecord> {
  return (await deps.catalog()).sddcs.require(options.name);
}

export function renderText(r: SddcRecord): string[] {
  return [
    `name        ${r.name}`,
    `data center ${r.dataCenter}`,
    `task queue  ${r.taskQueue}`,
    `capacity    ${formatCapacity(r.capacity)}`,
    `deploys to  ${describeTarget(r.target)}`,
    `registered  ${r.createdAt.toISOString()}`,
    ...(r.updatedAt ? [`updated     ${r.updatedAt.toISOString()}`] : []),
  ];
}

export function register(program: Command, deps: CliDeps): void {
  sddcGroup(program)
    .command('show')
    .description('one registered SDDC')
    .argument('<name>')
    .addOption(jsonOption())
    .addHelpText('after', examples('vmhub sddc show east-3'))
    .action(async (name: string, opts: { json?: boolean }) => {
      const result = await run({ name }, deps);
      print(deps.io, Boolean(opts.json), result, () => renderText(result));
    });
}
