import { activityInfo, cancellationDetails, heartbeat, log } from '@temporalio/activity';
import { VmhubError } from '../shared/errors';
import type { GateVerdict } from '../shared/health-gate';
import type { LibraryPlacement } from '../shared/target-kinds/kind';
import { removeGateVm, startGateVm } from '../sddc/health-gate';
import { removeVmsNamed } from '../sddc/library-import';
import { vcenterTask, withVcenter, type LibraryTaskInput } from './content-library';
import { keepBeating } from './keep-beating';

/** How long a guest may take to report VMware Tools running when the input does not say. */
const DEFAULT_GUEST_TIMEOUT_SECONDS = 600;

export type GateInput = LibraryTaskInput & {
  placement: LibraryPlacement;
  expected: { cpus: number; memoryMiB: number };
  guestTimeoutSeconds?: number;
};

export interface HealthGateDeps {
  /** The SDDC this agent serves. */
  sddc: string;
  /** The agent's VMHUB_VCENTER_*, read at start. */
  env?: NodeJS.ProcessEnv;
}

/**
 * An SDDC agent's side of a rollout's health gate: `startGate` makes a VM from the library item and runs
 * its checks (src/sddc/health-gate.ts), leaving a VM that passed running for the control worker's
 * operator check; `removeGateVm` removes it after. The vCenter is the agent's own, as for every library task.
 */
export function createHealthGateActivities({ sddc, env = process.env }: HealthGateDeps) {
  const task = vcenterTask(sddc, env);

  return {
    /**
     * The instantiate, hardware, power-on and guest checks, as a verdict: a failed check is an answer (its
     * VM already removed), not a failure. A cancel removes the VM, also one whose deploy was under way.
     */
    async startGate(input: GateInput): Promise<GateVerdict> {
      return withVcenter(task, input, async (conn, _ref, signal) => {
        checkGateInput(input, conn.target.library);
        const info = activityInfo();
        const run = info.workflowExecution?.runId.slice(0, 8) ?? 'manual';
        const vmName = `vmhub-gate-${input.placement.itemName}-${run}-${info.activityId}`;
        let phase = 'instantiating';
        try {
          const verdict = await keepBeating(
            () =>
              startGateVm(conn, input.placement, vmName, input.expected, {
                guestTimeoutMs: (input.guestTimeoutSeconds ?? DEFAULT_GUEST_TIMEOUT_SECONDS) * 1000,
                retry: info.attempt > 1,
                signal,
                onCheck: (c) => {
                  phase = `${c.check} ${c.passed ? 'passed' : 'failed'}`;
                  heartbeat({ sddc, phase, vmName });
                },
              }),
            () => heartbeat({ sddc, phase, vmName }),
          );
          const last = verdict.checks[verdict.checks.length - 1];
          log.info('health gate checks ran', { item: input.placement.itemName, vm: verdict.vm, passed: verdict.passed, last });
          return verdict;
        } catch (err) {
          if (signal.aborted && cancellationDetails()?.cancelRequested) {
            // By name: a cancel during the deploy has no VM ID yet.
            await removeVmsNamed(conn, vmName).catch((e: unknown) =>
              log.warn('could not remove the cancelled gate VM', { vmName, error: e }),
            );
          }
          throw err;
        }
      });
    },

    /** Powers the gate's VM off and deletes it; a VM already gone is no error (`removed: false`). */
    async removeGateVm(input: LibraryTaskInput & { vm: string }): Promise<{ removed: boolean }> {
      return withVcenter(task, input, async (conn, _ref, signal) => {
        if (!/^[A-Za-z0-9._-]{1,80}$/.test(input.vm))
          throw new VmhubError('InvalidInput', 'vm must be a vCenter VM ID, e.g. vm-42');
        const removed = await keepBeating(
          () => removeGateVm(conn, input.vm, signal),
          () => heartbeat({ sddc, phase: 'removing' }),
        );
        return { removed };
      });
    },
  };
}

export type HealthGateActivities = ReturnType<typeof createHealthGateActivities>;

/** What the workflow gives is checked before a VM is made: the item must be in this SDDC's library. */
function checkGateInput(input: GateInput, library: string): void {
  const whole = (n: unknown, max: number) => typeof n === 'number' && Number.isInteger(n) && n > 0 && n <= max;
  if (input.placement?.library !== library) {
    throw new VmhubError(
      'InvalidInput',
      `the gate's item is in library ${String(input.placement?.library)}, not this SDDC's ${library}`,
    );
  }
  if (!whole(input.expected?.cpus, 4096) || !whole(input.expected?.memoryMiB, 2 ** 30)) {
    throw new VmhubError('InvalidInput', 'expected must give whole, positive cpus and memoryMiB');
  }
  if (input.guestTimeoutSeconds !== undefined && !whole(input.guestTimeoutSeconds, 86_400)) {
    throw new VmhubError('InvalidInput', 'guestTimeoutSeconds must be a whole number of seconds from 1 to 86400');
  }
}
