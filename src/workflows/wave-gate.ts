import { CancellationScope } from '@temporalio/workflow';
import type { ChannelItemActivities } from '../activities/channel-item';
import type { LibraryTaskInput } from '../activities/content-library';
import type { DeploymentPlan, DeploymentTarget } from '../activities/deploy';
import type { HealthGateActivities } from '../activities/health-gate';
import type { ChannelItemOutcome, DeployGate, DeployResultRow } from '../shared/deploy-input';
import type { GateVerdict } from '../shared/health-gate';
import { NON_RETRYABLE_ERROR_TYPES } from '../shared/errors';
import { findFormat } from '../shared/image-format';
import type { LibraryPlacement } from '../shared/target-kinds/kind';
import { controlWith } from './activity-options';
import { onAgent } from './agent-queues';

type Delivered = Omit<DeployResultRow, 'sddc' | 'dataCenter'>;

/** An operator check runs as long as its own timeout says (at most an hour), heartbeating; a check that timed out is an answer, not a retry. */
const operatorChecks = controlWith({
  startToCloseTimeout: '65 minutes',
  heartbeatTimeout: '30 seconds',
  scheduleToCloseTimeout: '3 hours',
  retry: { maximumAttempts: 3, initialInterval: '5 seconds', nonRetryableErrorTypes: NON_RETRYABLE_ERROR_TYPES },
});

/**
 * A rollout wave's steps on one content-library SDDC once it holds the version as item `<image>-<version>`:
 * the health gate on that item, then, only when it passed, the channel's item (`<image>-<channel>`, its ID
 * unchanged) made to hold the version. A failed gate fails the row, names the check, and leaves the
 * channel's item as it was.
 */
export async function gateAndChannel(
  plan: DeploymentPlan,
  target: DeploymentTarget,
  task: LibraryTaskInput,
  delivered: Delivered,
  wave: { gate?: DeployGate; channel?: string },
): Promise<Delivered> {
  const { sddc } = target;
  const item = delivered.target;
  if (!item) return delivered;
  const row: Delivered = { ...delivered };
  if (wave.gate) {
    row.gate = await runGate(plan, sddc, task, item, wave.gate);
    const failed = row.gate.checks.find((c) => !c.passed);
    if (!row.gate.passed) {
      return {
        ...row,
        status: 'failed',
        reason: `gate ${failed?.check ?? 'check'} failed on ${sddc.name}: ${failed?.detail ?? 'no detail'}`,
      };
    }
  }
  if (wave.channel) {
    const agent = onAgent<ChannelItemActivities>(sddc.taskQueue, {
      startToCloseTimeout: '12 hours',
      heartbeatTimeout: '30 seconds',
    });
    const out = await agent.syncChannelItem.executeWithOptions(
      { summary: `make ${plan.image}-${wave.channel} on ${sddc.name} hold ${plan.version}` },
      [{ ...task, channel: wave.channel }],
    );
    const channelItem: ChannelItemOutcome = { channel: wave.channel, ...out };
    row.channelItem = channelItem;
  }
  return row;
}

/**
 * The gate on one SDDC: the agent makes a VM from the item and runs the instantiate, hardware, power-on and
 * guest checks (a VM that failed one is removed by the agent); the operator check runs on the control
 * worker while the VM is up; the VM is removed however the gate ends, a cancel included.
 */
async function runGate(
  plan: DeploymentPlan,
  sddc: DeploymentTarget['sddc'],
  task: LibraryTaskInput,
  item: LibraryPlacement,
  gate: DeployGate,
): Promise<GateVerdict> {
  const agent = onAgent<HealthGateActivities>(sddc.taskQueue, { startToCloseTimeout: '2 hours', heartbeatTimeout: '30 seconds' });
  let verdict: GateVerdict = { passed: true, checks: [] };
  if (gate.instantiate && findFormat(plan.format)?.canInstantiate !== true) {
    // An ISO makes no VM: the gate says so rather than pass a check it never ran.
    verdict.checks.push({ check: 'instantiate', passed: true, detail: `a ${plan.format} image makes no VM: not checked` });
  } else if (gate.instantiate && !plan.resources) {
    return {
      passed: false,
      checks: [{ check: 'instantiate', passed: false, detail: 'the catalog gives no CPUs and memory to check a VM against' }],
    };
  } else if (gate.instantiate) {
    verdict = await agent.startGate.executeWithOptions({ summary: `health gate of ${item.itemName} on ${sddc.name}` }, [
      {
        ...task,
        placement: item,
        expected: { cpus: plan.resources!.cpus, memoryMiB: plan.resources!.memoryMiB },
        ...(gate.guestTimeoutSeconds ? { guestTimeoutSeconds: gate.guestTimeoutSeconds } : {}),
      },
    ]);
  }
  const vm = verdict.passed ? verdict.vm : undefined;
  try {
    if (!verdict.passed || !gate.operatorCheck) return verdict;
    const check = await operatorChecks.runOperatorCheck.executeWithOptions(
      { summary: `operator check ${gate.operatorCheck} of ${item.itemName} on ${sddc.name}` },
      [{ check: gate.operatorCheck, sddc: sddc.name, image: plan.image, version: plan.version, item, vm: vm ?? '' }],
    );
    return { ...verdict, passed: check.passed, checks: [...verdict.checks, check] };
  } finally {
    if (vm) {
      await CancellationScope.nonCancellable(() =>
        agent.removeGateVm.executeWithOptions({ summary: `remove gate VM ${vm} on ${sddc.name}` }, [{ ...task, vm }]),
      );
    }
  }
}
