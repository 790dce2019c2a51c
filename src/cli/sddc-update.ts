import type { Command } from 'commander';
import type { SddcRecord } from '../catalog/sddc-records';
import { checkSddcChanges, updateSddc } from '../sddc/registry';
import { describeOvfPolicy, type OvfPolicy } from '../shared/ovf-policy';
import { describeTarget, type TargetOptions } from '../shared/sddc-target';
import { loadTopology, type Capacity } from '../topology/topology';
import { formatCapacity, parseCapacity } from '../shared/units';
import { examples, jsonOption } from './command';
import type { CliDeps } from './deps';
import { print } from './output';
import {
  givenOvfPolicy,
  givenTarget,
  oneSddcName,
  ovfPolicyOptions,
  sddcGroup,
  targetOptions,
  type OvfPolicyOptions,
} from './sddc';

/** Only the fields given change: each capacity field on its own, a target as a whole. */
export interface SddcUpdateOptions {
  name: string;
  dc?: string;
  capacity: Partial<Capacity>;
  taskQueue?: string;
  target?: TargetOptions;
  ovfPolicy?: OvfPolicy;
}

/** Changes a registered SDDC; UnknownSddc when there is none of that name (`sddc add` registers one). */
export async function run(options: SddcUpdateOptions, deps: CliDeps): Promise<SddcRecord> {
  oneSddcName(options.name, '`vmhub sddc update east-3 --cpus 48`');
  const changes = checkSddcChanges(loadTopology(deps.config.topologyPath), {
    dataCenter: options.dc,
    taskQueue: options.taskQueue,
    capacity: options.capacity,
    target: options.target && givenTarget(options.name, options.target),
    ovfPolicy: options.ovfPolicy,
  });
  return updateSddc((await deps.catalog()).sddcs, options.name, changes);
}

export function renderText(r: SddcRecord): string[] {
  return [
    `updated ${r.name} in ${r.dataCenter} (task queue ${r.taskQueue}): ${formatCapacity(r.capacity)}`,
    `deploys into ${describeTarget(r.target)}`,
    `OVF policy: ${describeOvfPolicy(r.ovfPolicy)}`,
  ];
}

export function register(program: Command, deps: CliDeps): void {
  ovfPolicyOptions(
    targetOptions(
      sddcGroup(program)
        .command('update')
        .description('change the fields given of a registered SDDC; the others stay as they are')
        .argument('<name>')
        .option('--dc <dataCenter>', 'the data center it is in')
        .option('--cpus <n>', 'CPUs available')
        .option('--memory <size>', 'memory available, e.g. 256GiB (a plain number is GiB)')
        .option('--disk <size>', 'disk available, e.g. 2TiB (a plain number is GiB)')
        .option('--task-queue <queue>', "its agent's task queue"),
    ),
    true,
  )
    .addOption(jsonOption())
    .addHelpText(
      'after',
      examples(
        'vmhub sddc update east-3 --cpus 48',
        'vmhub sddc update east-3 --memory 1TiB --disk 8TiB',
        'vmhub sddc update east-3 --require-ovf-cert --no-require-manifest',
      ),
    )
    .action(
      async (
        name: string,
        opts: TargetOptions &
          OvfPolicyOptions & { dc?: string; cpus?: string; memory?: string; disk?: string; taskQueue?: string; json?: boolean },
      ) => {
        const { dc, taskQueue } = opts;
        const ovfPolicy = givenOvfPolicy(opts);
        const result = await run({ name, dc, taskQueue, capacity: parseCapacity(opts), target: opts, ovfPolicy }, deps);
        print(deps.io, Boolean(opts.json), result, () => renderText(result));
      },
    );
}
