import type { Command } from 'commander';
import { examples, jsonOption } from './command';
import type { CliDeps } from './deps';
import { print } from './output';
import { oneSddcName, sddcGroup } from './sddc';

export interface SddcRemoveResult {
  removed: string;
}

export async function run(options: { name: string }, deps: CliDeps): Promise<SddcRemoveResult> {
  oneSddcName(options.name, '`vmhub sddc remove east-3`');
  const catalog = await deps.catalog();
  await catalog.sddcs.require(options.name);
  await catalog.sddcs.remove(options.name);
  return { removed: options.name };
}

export function renderText(r: SddcRemoveResult): string[] {
  return [`removed ${r.removed}`];
}

export function register(program: Command, deps: CliDeps): void {
  sddcGroup(program)
    .command('remove')
    .description('unregister an SDDC: deploys no longer reach it (its copies stay where they are)')
    .argument('<name>')
    .addOption(jsonOption())
    .addHelpText('after', examples('vmhub sddc remove east-3'))
    .action(async (name: string, opts: { json?: boolean }) => {
      const result = await run({ name }, deps);
      print(deps.io, Boolean(opts.json), result, () => renderText(result));
    });
}
