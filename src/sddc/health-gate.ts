import { setTimeout as sleep } from 'node:timers/promises';
import type { Resources } from '../images/ovf/metadata';
import { boundedDetail, type GateCheckResult, type GateVerdict } from '../shared/health-gate';
import type { LibraryPlacement } from '../shared/target-kinds/kind';
import { plural } from '../shared/units';
import { deployFromItem, InstantiateFailed, removeVm, type InstantiateResult, type VcenterConnection } from './library-import';
import { TASK_FAILED, type ManagedObject, type VimSession } from './vim-soap';
import { VsphereApiError } from './vsphere-rest';

/**
 * A rollout's health gate on one SDDC, as plain steps over one vCenter connection: a VM from the library
 * item, its hardware, its power and its guest. A check that fails is an answer, not an error: the VM is
 * removed and the verdict says which check failed. Only what cannot be judged (an unreachable vCenter)
 * throws, for the activity to retry.
 */

/** Powered on means the task ended; the property follows at once on a vCenter, this is a generous bound. */
const POWER_ON_TIMEOUT_MS = 120_000;
const POLL_MS = 500;

export { removeVm as removeGateVm } from './library-import';

export interface GateOptions {
  /** How long the guest may take to report VMware Tools running once the VM is on. */
  guestTimeoutMs: number;
  /** A retry removes a VM of the same name that an earlier attempt left. */
  retry?: boolean;
  signal?: AbortSignal;
  /** Told each check as it ends: the activity beats with it. */
  onCheck?: (check: GateCheckResult) => void;
}

/**
 * Deploys `vmName` from the item, checks its CPUs and memory are `expected`, powers it on and waits until
 * it is on, then (unless the target's guest check is `power-state`) until its guest reports VMware Tools
 * running. Passed, the VM is left running for the checks that follow (removeGateVm removes it); failed,
 * it is removed at once and the failed check is the verdict's last.
 */
export async function startGateVm(
  conn: VcenterConnection,
  placement: LibraryPlacement,
  vmName: string,
  expected: Pick<Resources, 'cpus' | 'memoryMiB'>,
  options: GateOptions,
): Promise<GateVerdict> {
  const { signal } = options;
  const checks: GateCheckResult[] = [];
  const record = (c: GateCheckResult): boolean => {
    checks.push(c);
    options.onCheck?.(c);
    return c.passed;
  };
  let deployed: InstantiateResult;
  try {
    deployed = await deployFromItem(conn, placement, vmName, { retry: options.retry, signal });
  } catch (err) {
    if (!(err instanceof InstantiateFailed)) throw err;
    record({ check: 'instantiate', passed: false, detail: boundedDetail(err.message) });
    return { passed: false, vmName, checks };
  }
  const { vm } = deployed;
  record({ check: 'instantiate', passed: true, detail: `deployed ${vm} from ${placement.itemName}` });
  let passed: boolean;
  try {
    const vim = await conn.vim(signal);
    const ref: ManagedObject = { type: 'VirtualMachine', id: vm };
    passed =
      record(hardwareCheck(deployed, expected)) &&
      record(await powerOnCheck(vim, ref, signal)) &&
      (conn.target.guestCheck === 'power-state' || record(await guestCheck(vim, ref, options.guestTimeoutMs, signal)));
  } catch (err) {
    // Not judged (the vCenter went away, or the activity was cancelled): the VM goes, the error stays.
    await removeVm(conn, vm).catch(() => undefined);
    throw err;
  }
  if (passed) return { passed: true, vm, vmName, checks };
  await removeVm(conn, vm, signal);
  return { passed: false, vmName, checks };
}

function hardwareCheck(vm: InstantiateResult, expected: Pick<Resources, 'cpus' | 'memoryMiB'>): GateCheckResult {
  const seen = `${plural(vm.cpus, 'CPU')} and ${vm.memoryMiB} MiB`;
  if (vm.cpus === expected.cpus && vm.memoryMiB === expected.memoryMiB) {
    return { check: 'hardware', passed: true, detail: seen };
  }
  return {
    check: 'hardware',
    passed: false,
    detail: `the VM has ${seen}; the catalog says ${plural(expected.cpus, 'CPU')} and ${expected.memoryMiB} MiB`,
  };
}

async function powerOnCheck(vim: VimSession, vm: ManagedObject, signal?: AbortSignal): Promise<GateCheckResult> {
  try {
    await vim.runTask('PowerOnVM_Task', vm, signal);
  } catch (err) {
    // The task's answer (no resources, a bad device): the VM cannot start. A failed call (a dropped session) is retried.
    if (err instanceof VsphereApiError && err.type === TASK_FAILED && !signal?.aborted)
      return { check: 'power-on', passed: false, detail: boundedDetail(err.message) };
    throw err;
  }
  const state = await waitForValue(vim, vm, 'runtime.powerState', 'poweredOn', POWER_ON_TIMEOUT_MS, signal);
  if (state.value === 'poweredOn') return { check: 'power-on', passed: true, detail: `${vm.id} is poweredOn` };
  return {
    check: 'power-on',
    passed: false,
    detail: `runtime.powerState of ${vm.id} is ${state.value ?? 'not reported'} after ${seconds(state.waitedMs)}; want poweredOn`,
  };
}

async function guestCheck(vim: VimSession, vm: ManagedObject, timeoutMs: number, signal?: AbortSignal): Promise<GateCheckResult> {
  const tools = await waitForValue(vim, vm, 'guest.toolsRunningStatus', 'guestToolsRunning', timeoutMs, signal);
  if (tools.value === 'guestToolsRunning') return { check: 'guest', passed: true, detail: 'guest reports guestToolsRunning' };
  return {
    check: 'guest',
    passed: false,
    detail: `guest.toolsRunningStatus is ${tools.value || 'not reported'} after ${seconds(tools.waitedMs)}; want guestToolsRunning`,
  };
}

/** Reads a property until it has the wanted value or the time is up; the last value read, and how long it took. */
async function waitForValue(
  vim: VimSession,
  obj: ManagedObject,
  property: string,
  wanted: string,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<{ value: string | undefined; waitedMs: number }> {
  const start = Date.now();
  for (;;) {
    const value = (await vim.properties(obj, [property], signal))[property];
    const waitedMs = Date.now() - start;
    if (value === wanted || waitedMs >= timeoutMs) return { value, waitedMs };
    await sleep(Math.min(POLL_MS, timeoutMs - waitedMs), undefined, { signal });
  }
}

function seconds(ms: number): string {
  return `${Math.round(ms / 1000)} s`;
}
