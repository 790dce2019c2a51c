import type { Command } from 'commander';
import type { SddcRecord } from '../catalog/sddc-records';
import { checkSddcChanges, updateSddc } from '../sddc/registry';
import { describeOvfPolicy, type OvfPolicy } from '../shared/ovf-policy';
import { VmhubError } from '../shared/errors';
import { describeTarget, type SddcTarget, type TargetOptions } from '../shared/sddc-target';
import { parseGuestCheck } from '../shared/target-kinds/content-library';
import { failer } from '../shared/target-kinds/kind';
import { loadTopology, type Capacity } from '../topology/topology';
import { formatCapacity, parseCapacity } from '../shared/units';
import { examples, jsonOption } from './command';
import type { CliDeps } from './deps';
import { print } from './output';
import {
  givenOvfPolicy,
  describeLabels,
  givenLabels,
  givenTarget,
  labelOption,
  mappedTarget,
  networkMapOption,
  oneSddcName,
  onlyGuestCheck,
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
  labels?: Record<string, string | null>;
  /** `--network-map` values (`from=to`, `from=` removes one): applied to the target given, else to the registered one. */
  networkMap?: string[];
}

/** Changes a registered SDDC; UnknownSddc when there is none of that name (`sddc add` registers one). */
export async function run(options: SddcUpdateOptions, deps: CliDeps): Promise<SddcRecord> {
  oneSddcName(options.name, '`vmhub sddc update east-3 --cpus 48`');
  const topology = loadTopology(deps.config.topologyPath);
  const fields = {
    dataCenter: options.dc,
    taskQueue: options.taskQueue,
    capacity: options.capacity,
    ovfPolicy: options.ovfPolicy,
    labels: options.labels,
  };
  const { target } = options;
  let given: SddcTarget | undefined;
  if (target && onlyGuestCheck(target)) {
    // Checked before the catalog is asked, like every other option.
    const guestCheck = parseGuestCheck(target.guestCheck, failer('--guest-check'));
    const current = (await (await deps.catalog()).sddcs.require(options.name)).target;
    given = withGuestCheck(options.name, current, guestCheck);
  } else {
    given = target && givenTarget(options.name, target);
  }
  if (options.networkMap?.length) {
    const registered = given ?? (await (await deps.catalog()).sddcs.require(options.name)).target;
    given = mappedTarget(options.name, registered, options.networkMap);
  }
  const changes = checkSddcChanges(topology, { ...fields, target: given });
  return updateSddc((await deps.catalog()).sddcs, options.name, changes);
}

/**
 * `--guest-check` alone changes that setting of the SDDC's content library, keeping the rest of its target
 * (any other target option gives the target anew, as a whole).
 */
function withGuestCheck(name: string, current: SddcTarget | undefined, guestCheck: 'power-state' | undefined): SddcTarget {
  if (current?.kind !== 'content-library') {
    throw new VmhubError(
      'InvalidInput',
      `SDDC ${name} deploys into ${describeTarget(current)}: --guest-check is a content library's setting; give its --vcenter too`,
    );
  }
  const { guestCheck: _old, ...rest } = current;
  return guestCheck ? { ...rest, guestCheck } : rest;
}

export function renderText(r: SddcRecord): string[] {
  return [
    `updated ${r.name} in ${r.dataCenter} (task queue ${r.taskQueue}): ${formatCapacity(r.capacity)}`,
    `deploys into ${describeTarget(r.target)}`,
    `OVF policy: ${describeOvfPolicy(r.ovfPolicy)}`,
    `labels: ${describeLabels(r.labels)}`,
  ];
}

export function register(program: Command, deps: CliDeps): void {
  labelOption(
    ovfPolicyOptions(
      networkMapOption(
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
      ),
      true,
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
        'vmhub sddc update east-3 --label ring=canary --label zone=',
        'vmhub sddc update east-3 --network-map prod="VM Network" --network-map test=',
      ),
    )
    .action(
      async (
        name: string,
        opts: TargetOptions &
          OvfPolicyOptions & {
            dc?: string;
            cpus?: string;
            memory?: string;
            disk?: string;
            taskQueue?: string;
            label?: string[];
            networkMap?: string[];
            json?: boolean;
          },
      ) => {
        const { dc, taskQueue, networkMap } = opts;
        const ovfPolicy = givenOvfPolicy(opts);
        const labels = givenLabels(opts.label, true);
        const capacity = parseCapacity(opts);
        const result = await run({ name, dc, taskQueue, capacity, target: opts, ovfPolicy, networkMap, labels }, deps);
        print(deps.io, Boolean(opts.json), result, () => renderText(result));
      },
    );
}
