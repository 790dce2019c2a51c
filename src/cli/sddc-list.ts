import type { Command } from 'commander';
import type { SddcRecord } from '../catalog/sddc-records';
import { targetLabel } from '../shared/sddc-target';
import { jsonOption } from './command';
import type { CliDeps } from './deps';
import { formatMiB } from '../shared/units';
import { print, table } from './output';
import { sddcGroup } from './sddc';

export async function run(_options: Record<string, never>, deps: CliDeps): Promise<SddcRecord[]> {
  return (await deps.catalog()).sddcs.list();
}

export function renderText(list: SddcRecord[]): string[] {
  if (list.length === 0) return ['no SDDCs registered; add one with `vmhub sddc add <name> --dc <data-center>`'];
  return table(
    ['NAME', 'DATA CENTER', 'TASK QUEUE', 'CPUS', 'MEMORY', 'DISK', 'TARGET'],
    list.map((s) => [
      s.name,
      s.dataCenter,
      s.taskQueue,
      String(s.capacity.cpus),
      formatMiB(s.capacity.memoryMiB),
      formatMiB(s.capacity.diskGiB * 1024),
      targetLabel(s.target),
    ]),
  );
}

export function register(program: Command, deps: CliDeps): void {
  sddcGroup(program)
    .command('list')
    .description('the registered SDDCs')
    .addOption(jsonOption())
    .action(async (opts: { json?: boolean }) => {
      const result = await run({}, deps);
      print(deps.io, Boolean(opts.json), result, () => renderText(result));
    });
}
