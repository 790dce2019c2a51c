import type { LibraryPlacement } from './target-kinds/kind';

/**
 * What a rollout's health gate checks on one SDDC, and what it found: plain data, so workflows, activities
 * and the CLI share it.
 */

/**
 * How far the guest check goes: `required` waits for the guest to report VMware Tools running (what a real
 * vCenter's running guest does); `power-state` stops at the VM being powered on, for an SDDC whose guests
 * cannot report (a simulator's VMs never run a guest).
 */
export type GuestCheck = 'required' | 'power-state';

export const GUEST_CHECKS: readonly GuestCheck[] = ['required', 'power-state'];

/** The checks in the order a gate runs them; a failed one is the last of a verdict's checks. */
export type GateCheckName = 'instantiate' | 'hardware' | 'power-on' | 'guest' | 'operator';

export interface GateCheckResult {
  check: GateCheckName;
  passed: boolean;
  /** What was seen, for people: bounded, never a secret. */
  detail: string;
}

export interface GateVerdict {
  passed: boolean;
  /** The gate's VM, while it is running for later checks; absent once a failed check removed it. */
  vm?: string;
  vmName?: string;
  checks: GateCheckResult[];
}

/** A check's detail stays short enough for a result row, whatever a vCenter or an operator's check answered. */
export const DETAIL_LIMIT = 300;

export function boundedDetail(text: string): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length <= DETAIL_LIMIT ? line : `${line.slice(0, DETAIL_LIMIT - 1)}…`;
}

/**
 * An operator check to run on the control worker: `check` names one the worker's VMHUB_OPERATOR_CHECKS_FILE
 * defines; the input never carries a URL or a command, so starting a workflow cannot run a program.
 */
export interface OperatorCheckInput {
  check: string;
  sddc: string;
  image: string;
  version: string;
  item: LibraryPlacement;
  vm: string;
}

/** An operator check's name as VMHUB_OPERATOR_CHECKS_FILE defines it: a workflow input names a check, never runs a URL or command. */
export const OPERATOR_CHECK_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;
