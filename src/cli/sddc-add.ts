import type { Command } from 'commander';
import type { SddcRecord } from '../catalog/catalog';
import { targetFromOptions, type TargetOptions } from '../sddc/target';
import type { Capacity } from '../topology/topology';
import { checkSddcName } from './checks';
import { examples, jsonOption, requiredOption } from './command';
import type { CliDeps } from './deps';
import { print } from './output';
import { capacityText, catalogRegistry, checkDataCenter, parseCapacitySize, parseCpus, sddcGroup, targetText } from './sddc';

export interface SddcAddOptions {
  name: string;
  dc: string;
  capacity: Capacity;
  taskQueue?: string;
  target: TargetOptions;
}

/** Registers a new SDDC; a name registered already is refused (`sddc update` changes one). */
export async function run(options: SddcAddOptions, deps: CliDeps): Promise<SddcRecord> {
  checkSddcName(options.name, 'the SDDC name');
  checkDataCenter(deps.config, options.dc);
  // --library has a default, so it alone does not ask for a content library.
  const t = options.target;
  const target = targetFromOptions(options.name, { ...t, library: t.vcenter ? t.library : undefined });
  return catalogRegistry(await deps.catalog()).create({
    name: options.name,
    dataCenter: options.dc,
    taskQueue: options.taskQueue ?? `sddc-${options.name}`,
    capacity: options.capacity,
    target,
  });
}

export function renderText(r: SddcRecord): string[] {
  return [
    `registered ${r.name} in ${r.dataCenter} (task queue ${r.taskQueue}): ${capacityText(r.capacity)}`,
    `deploys into ${targetText(r)}${r.target?.kind === 'content-library' ? `; its agent logs in with $${r.target.usernameEnv} and $${r.target.passwordEnv}` : ''}`,
    `start its agent with \`npm run agent -- ${r.name}\``,
  ];
}

export function register(program: Command, deps: CliDeps): void {
  sddcGroup(program)
    .command('add')
    .description('register a new SDDC (an existing one is refused: use `sddc update`)')
    .argument('<name>', 'lowercase letters, digits and -, e.g. east-3')
    .addOption(requiredOption('--dc <dataCenter>', 'the data center it is in, as the topology names it'))
    .option('--cpus <n>', 'CPUs available', '64')
    .option('--memory <size>', 'memory available, with a unit', '512GiB')
    .option('--disk <size>', 'disk available, with a unit', '4TiB')
    .option('--task-queue <queue>', "its agent's task queue (default sddc-<name>)")
    .option('--vcenter <url>', "deploy into this vCenter's content library (default: a directory of the agent's datastore)")
    .option('--library <name>', 'the content library, created when missing', 'vmhub')
    .option('--datastore <name>', "a new library's datastore (default: the vCenter's first)")
    .option('--resource-pool <name>', 'where instantiate checks deploy (default: the first cluster)')
    .option('--username-env <VAR>', "the agent's variable holding the vCenter user (default VMHUB_VC_<NAME>_USERNAME)")
    .option('--password-env <VAR>', "the agent's variable holding the vCenter password (default VMHUB_VC_<NAME>_PASSWORD)")
    .option('--insecure-tls', "accept the vCenter's certificate without a CA (simulators, labs)")
    .option('--instantiate', 'check every deployment by making a VM from the item and removing it')
    .addOption(jsonOption())
    .addHelpText(
      'after',
      examples(
        'vmhub sddc add east-3 --dc dc-east --cpus 32 --memory 256GiB --disk 2TiB',
        'vmhub sddc add lab-1 --dc dc-west --vcenter https://vc.lab.example/sdk --insecure-tls',
      ),
    )
    .action(
      async (
        name: string,
        opts: TargetOptions & { dc: string; cpus: string; memory: string; disk: string; taskQueue?: string; json?: boolean },
      ) => {
        const { vcenter, library, datastore, resourcePool, usernameEnv, passwordEnv, insecureTls, instantiate } = opts;
        const result = await run(
          {
            name,
            dc: opts.dc,
            capacity: {
              cpus: parseCpus(opts.cpus),
              memoryMiB: parseCapacitySize('--memory', opts.memory),
              diskGiB: parseCapacitySize('--disk', opts.disk),
            },
            taskQueue: opts.taskQueue,
            target: { vcenter, library, datastore, resourcePool, usernameEnv, passwordEnv, insecureTls, instantiate },
          },
          deps,
        );
        print(deps.io, Boolean(opts.json), result, () => renderText(result));
      },
    );
}
