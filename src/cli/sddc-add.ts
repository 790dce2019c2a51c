import type { Command } from 'commander';
import type { SddcRecord } from '../catalog/sddc-records';
import { checkNewSddc, createSddc } from '../sddc/registry';
import { describeOvfPolicy, type OvfPolicy } from '../shared/ovf-policy';
import { agentTaskQueueOf } from '../shared/task-queues';
import { describeTarget, parseTarget, targetAddNote, type TargetOptions } from '../shared/sddc-target';
import { loadTopology, type Capacity } from '../topology/topology';
import { formatCapacity, parseCpus, parseDiskGiB, parseMemoryMiB } from '../shared/units';
import { examples, jsonOption, requiredOption } from './command';
import type { CliDeps } from './deps';
import { print } from './output';
import {
  givenLabels,
  givenOvfPolicy,
  givenTarget,
  labelOption,
  mappedTarget,
  networkMapOption,
  ovfPolicyOptions,
  sddcGroup,
  targetOptions,
  type OvfPolicyOptions,
} from './sddc';

export interface SddcAddOptions {
  name: string;
  dc: string;
  capacity: Capacity;
  taskQueue?: string;
  target: TargetOptions;
  ovfPolicy?: OvfPolicy;
  labels?: Record<string, string>;
  /** `--network-map` values: `from=to`. */
  networkMap?: string[];
}

/** Registers a new SDDC; a name registered already is refused with SddcExists (`sddc update` changes one). */
export async function run(options: SddcAddOptions, deps: CliDeps): Promise<SddcRecord> {
  const sddc = checkNewSddc(loadTopology(deps.config.topologyPath), {
    name: options.name,
    dataCenter: options.dc,
    taskQueue: options.taskQueue ?? agentTaskQueueOf(options.name),
    capacity: options.capacity,
    target: mappedTarget(options.name, givenTarget(options.name, options.target) ?? parseTarget(undefined), options.networkMap),
    ovfPolicy: options.ovfPolicy,
    ...(options.labels ? { labels: options.labels } : {}),
  });
  return createSddc((await deps.catalog()).sddcs, sddc);
}

export function renderText(r: SddcRecord): string[] {
  return [
    `registered ${r.name} in ${r.dataCenter} (task queue ${r.taskQueue}): ${formatCapacity(r.capacity)}`,
    `deploys into ${describeTarget(r.target)}${targetAddNote(r.target)}`,
    ...(r.ovfPolicy ? [`OVF policy: ${describeOvfPolicy(r.ovfPolicy)}`] : []),
    `start its agent with \`npm run agent -- ${r.name}\``,
  ];
}

export function register(program: Command, deps: CliDeps): void {
  labelOption(
    ovfPolicyOptions(
      networkMapOption(
        targetOptions(
          sddcGroup(program)
            .command('add')
            .description('register a new SDDC (one registered already is refused: change it with `sddc update`)')
            .argument('<name>', 'lowercase letters, digits and -, e.g. east-3')
            .addOption(requiredOption('--dc <dataCenter>', 'the data center it is in, as the topology names it'))
            .option('--cpus <n>', 'CPUs available', '64')
            .option('--memory <size>', 'memory available, e.g. 512GiB (a plain number is GiB)', '512GiB')
            .option('--disk <size>', 'disk available, e.g. 4TiB (a plain number is GiB)', '4TiB')
            .option('--task-queue <queue>', "its agent's task queue (default sddc-<name>)"),
        ),
      ),
      false,
    ),
    false,
  )
    .addOption(jsonOption())
    .addHelpText(
      'after',
      examples(
        'vmhub sddc add east-3 --dc dc-east --cpus 32 --memory 256GiB --disk 2TiB',
        'vmhub sddc add lab-1 --dc dc-west --vcenter https://vc.lab.example/',
        'vmhub sddc add lab-2 --dc dc-west --vcenter https://vc2.lab.example/ --network-map prod="VM Network"',
        'vmhub sddc add secure-1 --dc dc-east --require-manifest --require-ovf-cert',
        'vmhub sddc add east-4 --dc dc-east --label ring=canary',
      ),
    )
    .action(
      async (
        name: string,
        opts: TargetOptions &
          OvfPolicyOptions & {
            dc: string;
            cpus: string;
            memory: string;
            disk: string;
            taskQueue?: string;
            label?: string[];
            networkMap?: string[];
            json?: boolean;
          },
      ) => {
        const { dc, cpus, memory, disk, taskQueue, networkMap } = opts;
        const capacity = { cpus: parseCpus(cpus), memoryMiB: parseMemoryMiB(memory), diskGiB: parseDiskGiB(disk) };
        const labels = givenLabels(opts.label, false) as Record<string, string> | undefined;
        const ovfPolicy = givenOvfPolicy(opts);
        const result = await run({ name, dc, capacity, taskQueue, target: opts, ovfPolicy, networkMap, labels }, deps);
        print(deps.io, Boolean(opts.json), result, () => renderText(result));
      },
    );
}
