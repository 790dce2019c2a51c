import { VmhubError } from './errors';
import type { DeployCounts, DeployResultRow } from './deploy-input';
import { OPERATOR_CHECK_NAME } from './health-gate';
import { validateChannelName, validateImageName, validateSddcName, validateVersionRef, type LatestRef } from './names';

/**
 * Rollout's input, plan, progress and result (a contract: runs started by other tools depend on it).
 * Plain data: the workflow bundle imports this.
 */

/**
 * The SDDCs of one wave: those named, and those whose data center is one of `dataCenters` (when given) and
 * that carry every one of `labels` (when given).
 */
export interface WaveSelector {
  sddcs?: string[];
  dataCenters?: string[];
  labels?: Record<string, string>;
}

/** What a wave must pass before the next one starts. */
export interface GateSpec {
  /**
   * For content-library SDDCs: make a VM from the new item, check its hardware, power it on, wait for the
   * guest (or only the power state, as the SDDC's `--guest-check` says), remove it. Default true.
   */
  instantiate?: boolean;
  /** A check the control worker's VMHUB_OPERATOR_CHECKS_FILE defines: never a URL or a command itself. */
  operatorCheck?: string;
  /** How long a gate VM's guest may take to report running (default 600). */
  guestTimeoutSeconds?: number;
  /** How long the wave bakes after its gate passed, before the next wave may start. */
  bakeSeconds?: number;
  /** The wave halts the rollout when more SDDCs than this failed; without a budget any failure halts it. */
  maxFailures?: number;
  /** ... or when more than this share of the wave failed, in percent. */
  maxFailurePercent?: number;
}

export interface WaveSpec extends WaveSelector {
  name?: string;
  /** The wave waits for `vmhub rollout approve` before it starts. */
  approval?: boolean;
  gate?: GateSpec;
}

export interface RolloutInput {
  image: string;
  version: string | LatestRef;
  /** The channel that points at the version once every wave passed; its library item is updated per SDDC. */
  channel?: string;
  /** The waves in order; none takes the image's stored rollout policy. */
  waves: WaveSpec[];
  /** A rollback: the channel goes back to `version`, which it pointed at before. */
  rollback?: boolean;
  /** Who started it, as the operator's CLI says: shown, never trusted for anything. */
  by?: string;
}

export interface PlannedWave {
  name: string;
  sddcs: string[];
  approval: boolean;
  gate: GateSpec;
}

export interface RolloutPlan {
  image: string;
  version: string;
  channel?: string;
  /** The version the channel pointed at when the rollout began. */
  channelBefore?: string;
  waves: PlannedWave[];
}

export type WaveState =
  'pending' | 'awaiting-approval' | 'deploying' | 'baking' | 'passed' | 'halted' | 'aborted' | 'not-started' | 'rolled-back';

export type RolloutState = 'planning' | 'running' | 'paused' | 'completed' | 'halted' | 'aborted';

/** Failed rows a wave keeps in the rollout's progress, whatever its size: its deploy run has them all. */
export const WAVE_ROWS_KEPT = 20;

export interface WaveProgress {
  name: string;
  sddcs: number;
  state: WaveState;
  /** The deploy run of the wave, once it started. */
  deployWorkflowId?: string;
  counts: DeployCounts;
  /** Failed and skipped rows, at most WAVE_ROWS_KEPT. */
  failed: DeployResultRow[];
  approvedBy?: string;
  /** Why the wave halted the rollout. */
  reason?: string;
}

export interface OperatorAction {
  /** Who, as the operator's CLI says (`--by`, else the login name). */
  by: string;
  at: string;
  action: 'approve' | 'pause' | 'resume' | 'abort';
  wave?: number;
  reason?: string;
}

export interface RolloutProgress {
  image: string;
  version: string;
  channel?: string;
  state: RolloutState;
  /** The wave being worked on, 1-based; 0 before the first. */
  wave: number;
  /** What the rollout waits for now, in words (approval, a resume, the bake time, the wave's deploy). */
  waitingFor?: string;
  waves: WaveProgress[];
  /** Every approve, pause, resume and abort, in order. */
  actions: OperatorAction[];
}

export type RolloutResult = RolloutProgress;

export interface ApproveArgs {
  by: string;
  /** The wave approved, 1-based; default the one waiting. */
  wave?: number;
}

export interface PauseArgs {
  by: string;
  reason?: string;
}

export interface AbortArgs {
  by: string;
  reason?: string;
  /** Put the channel items of the waves that finished back on the version the channel pointed at. */
  rollback?: boolean;
}

/** The query and the Updates of a Rollout run, by name: the CLI and other clients call them so. */
export const ROLLOUT_QUERY = 'rollout';
export const ROLLOUT_UPDATES = { approve: 'approve', pause: 'pause', resume: 'resume', abort: 'abort' } as const;

const MAX_WAVES = 20;

function fail(message: string): never {
  throw new VmhubError('InvalidInput', message);
}

function validateGate(gate: unknown, where: string): void {
  if (gate === undefined) return;
  if (typeof gate !== 'object' || gate === null || Array.isArray(gate)) fail(`${where} gate must be an object`);
  const g = gate as Record<string, unknown>;
  if (g.instantiate !== undefined && typeof g.instantiate !== 'boolean') fail(`${where} gate.instantiate must be true or false`);
  if (g.operatorCheck !== undefined && (typeof g.operatorCheck !== 'string' || !OPERATOR_CHECK_NAME.test(g.operatorCheck)))
    fail(`${where} gate.operatorCheck must name a check of VMHUB_OPERATOR_CHECKS_FILE, e.g. smoke`);
  const count = (key: string, max: number) => {
    const v = g[key];
    if (v !== undefined && (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max))
      fail(`${where} gate.${key} must be a whole number from 0 to ${max}`);
  };
  count('bakeSeconds', 30 * 24 * 3600);
  count('guestTimeoutSeconds', 3600);
  count('maxFailures', 1_000_000);
  count('maxFailurePercent', 100);
}

function validateSelector(w: Record<string, unknown>, where: string): void {
  const list = (key: string, check: (v: unknown) => void) => {
    const v = w[key];
    if (v === undefined) return;
    if (!Array.isArray(v)) fail(`${where} ${key} must be a list`);
    v.forEach(check);
  };
  list('sddcs', (n) => validateSddcName(n, `${where} SDDC`));
  list('dataCenters', (d) => {
    if (typeof d !== 'string' || d.length === 0 || d.length > 63) fail(`${where} data center ${JSON.stringify(d)} is not a name`);
  });
  if (w.labels !== undefined) {
    if (typeof w.labels !== 'object' || w.labels === null || Array.isArray(w.labels)) fail(`${where} labels must be an object`);
    for (const [k, v] of Object.entries(w.labels)) validateLabel(k, v, where);
  }
  const selects =
    ['sddcs', 'dataCenters'].some((k) => Array.isArray(w[k]) && (w[k] as unknown[]).length > 0) ||
    (w.labels !== undefined && Object.keys(w.labels as object).length > 0);
  if (!selects) fail(`${where} selects no SDDC: give SDDC names, data centers or labels`);
}

export const LABEL_KEY = /^[a-z][a-z0-9._-]{0,62}$/;
export const LABEL_VALUE = /^[A-Za-z0-9._-]{0,63}$/;

export function validateLabel(key: unknown, value: unknown, where = 'label'): void {
  if (typeof key !== 'string' || !LABEL_KEY.test(key) || key === 'dc')
    fail(
      `${where} label key ${JSON.stringify(key)} must be 1 to 63 lower-case letters, digits, '.', '_' or '-' (not "dc"), e.g. ring`,
    );
  if (typeof value !== 'string' || !LABEL_VALUE.test(value))
    fail(`${where} label ${key}'s value must be up to 63 letters, digits, '.', '_' or '-', e.g. canary`);
}

export function validateRolloutInput(input: unknown): RolloutInput {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    fail('Rollout input must be a JSON object with image, version and waves');
  }
  const i = input as Record<string, unknown>;
  validateImageName(i.image);
  validateVersionRef(i.version);
  if (i.channel !== undefined) validateChannelName(i.channel);
  if (!Array.isArray(i.waves)) fail("waves must be a list (empty: the image's rollout policy)");
  if (i.waves.length > MAX_WAVES) fail(`a rollout has at most ${MAX_WAVES} waves`);
  i.waves.forEach((w: unknown, n) => {
    const where = `wave ${n + 1}`;
    if (typeof w !== 'object' || w === null || Array.isArray(w)) fail(`${where} must be an object`);
    const wave = w as Record<string, unknown>;
    validateSelector(wave, where);
    if (wave.approval !== undefined && typeof wave.approval !== 'boolean') fail(`${where} approval must be true or false`);
    if (wave.name !== undefined && (typeof wave.name !== 'string' || wave.name.length === 0 || wave.name.length > 40))
      fail(`${where} name must be 1 to 40 characters`);
    validateGate(wave.gate, where);
  });
  if (i.rollback !== undefined && typeof i.rollback !== 'boolean') fail('rollback must be true or false');
  if (i.rollback === true && i.channel === undefined) fail('a rollback needs the channel it rolls back');
  if (i.by !== undefined && (typeof i.by !== 'string' || i.by.length > 80)) fail('by must be a name of at most 80 characters');
  return i as unknown as RolloutInput;
}

/** A rollout's workflow ID: one rollout per channel (or per version without one) runs at a time. */
export function rolloutWorkflowId(image: string, channelOrVersion: string): string {
  return `rollout:${image}:${channelOrVersion}`;
}

/**
 * Whether a wave's failures exceed its budget: more than maxFailures SDDCs, or more than maxFailurePercent
 * of the wave; without either, any failure does.
 */
export function overBudget(failed: number, total: number, gate: GateSpec): boolean {
  const { maxFailures: n, maxFailurePercent: p } = gate;
  if (n === undefined && p === undefined) return failed > 0;
  return (n !== undefined && failed > n) || (p !== undefined && (failed * 100) / Math.max(total, 1) > p);
}
