import type { Command } from 'commander';
import type { SddcRecord } from '../catalog/catalog';
import { VmhubError } from '../errors';
import type { Capacity } from '../topology/topology';
import { examples, jsonOption } from './command';
import type { CliDeps } from './deps';
import { print } from './output';
import { capacityText, catalogRegistry, checkDataCenter, parseCapacitySize, parseCpus, sddcGroup, unknownSddc } from './sddc';

/** Only the fields given change. */
export interface SddcUpdateOptions {
  name: string;
  dc?: string;
  capacity: Partial<Capacity>;
  taskQueue?: string;
}

export async function run(options: SddcUpdateOptions, deps: CliDeps): Promise<SddcRecord> {
  const given =
    Object.values(options.capacity).filter((v) => v !== undefined).length + (options.dc ? 1 : 0) + (options.taskQueue ? 1 : 0);
  if (given === 0) {
    throw new VmhubError(
      'InvalidInput',
      `nothing to change: give --dc, --cpus, --memory, --disk or --task-queue, e.g. vmhub sddc update ${options.name} --cpus 48`,
    );
  }
  if (options.dc) checkDataCenter(deps.config, options.dc);
  const registry = catalogRegistry(await deps.catalog());
  const current = await registry.get(options.name);
  if (!current) throw unknownSddc(options.name);
  const capacity = Object.fromEntries(Object.entries(options.capacity).filter(([, v]) => v !== undefined));
  return registry.update(options.name, {
    ...(options.dc ? { dataCenter: options.dc } : {}),
    ...(options.taskQueue ? { taskQueue: options.taskQueue } : {}),
    capacity: { ...current.capacity, ...capacity },
  });
}

export function renderText(r: SddcRecord): string[] {
  return [`updated ${r.name} in ${r.dataCenter} (task queue ${r.taskQueue}): ${capacityText(r.capacity)}`];
}

export function register(program: Command, deps: CliDeps): void {
  sddcGroup(program)
    .command('update')
    .description('change the fields given of a registered SDDC; the others stay as they are')
    .argument('<name>')
    .option('--dc <dataCenter>', 'the data center it is in')
    .option('--cpus <n>', 'CPUs available')
    .option('--memory <size>', 'memory available, with a unit (e.g. 256GiB)')
    .option('--disk <size>', 'disk available, with a unit (e.g. 2TiB)')
    .option('--task-queue <queue>', "its agent's task queue")
    .addOption(jsonOption())
    .addHelpText('after', examples('vmhub sddc update east-3 --cpus 48', 'vmhub sddc update east-3 --memory 1TiB --disk 8TiB'))
    .action(
      async (
        name: string,
        opts: { dc?: string; cpus?: string; memory?: string; disk?: string; taskQueue?: string; json?: boolean },
      ) => {
        const result = await run(
          {
            name,
            dc: opts.dc,
            taskQueue: opts.taskQueue,
            capacity: {
              cpus: opts.cpus === undefined ? undefined : parseCpus(opts.cpus),
              memoryMiB: opts.memory === undefined ? undefined : parseCapacitySize('--memory', opts.memory),
              diskGiB: opts.disk === undefined ? undefined : parseCapacitySize('--disk', opts.disk),
            },
          },
          deps,
        );
        print(deps.io, Boolean(opts.json), result, () => renderText(result));
      },
    );
}
