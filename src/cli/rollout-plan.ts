import fs from 'node:fs';
import os from 'node:os';
import { WorkflowFailedError, type Client, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { Command } from 'commander';
import type { Config } from '../config';
import { VmhubError } from '../shared/errors';
import {
  ROLLOUT_QUERY,
  rolloutWorkflowId,
  validateRolloutInput,
  type GateSpec,
  type RolloutInput,
  type RolloutProgress,
  type WaveSpec,
} from '../shared/rollout-input';
import { validateSddcName } from '../shared/names';
import { plural } from '../shared/units';
import { jsonOption } from './command';
import { errLine, type CliIo } from './output';

/**
 * What `rollout start`, `channel set`, `rollback` and `rollout policy` share: the waves as the command line
 * gives them, the rollout's start, and following it to its end.
 */

export interface WaveFlags {
  wave?: string[];
  approve?: string;
  bake?: string;
  maxFailures?: string;
  maxFailurePercent?: string;
  operatorCheck?: string;
  guestTimeout?: string;
  instantiate?: boolean;
  plan?: string;
}

/** The wave options, on every command that plans waves. */
export function waveOptions(command: Command): Command {
  return command
    .option(
      '--wave <selector>',
      'one wave, in order (repeatable): SDDC names, dc=<data center> and <label>=<value>, comma-separated, e.g. east-1,east-2 or ring=canary',
      (value: string, all: string[] = []) => [...all, value],
    )
    .option(
      '--approve <waves>',
      'waves that wait for an approval (vmhub rollout approve <rollout>), 1-based, comma-separated, e.g. 2,3',
    )
    .option('--bake <duration>', 'how long each wave bakes after its gate passed, e.g. 30s, 10m, 1h')
    .option('--max-failures <n>', 'halt when more than n SDDCs of a wave failed (default: any failure halts)')
    .option('--max-failure-percent <p>', 'halt when more than p % of a wave failed')
    .option('--operator-check <name>', "a check of the control worker's VMHUB_OPERATOR_CHECKS_FILE, run on each SDDC's gate VM")
    .option('--guest-timeout <duration>', "how long a gate VM's guest may take to report running (default 10m)")
    .option('--no-instantiate', 'no VM is made from the new item: the gate is the operator check and the budget only')
    .option('--plan <file>', 'the waves as a JSON list of {sddcs, dataCenters, labels, approval, gate}; instead of --wave');
}

/** What every command that starts a rollout takes beside its waves: who starts it, whether to follow it, JSON. */
export function startOptions(command: Command): Command {
  return command
    .option('--by <name>', 'who starts it, for the record (default VMHUB_OPERATOR or the login name)')
    .option('--no-wait', 'start the rollout, print its ID and return')
    .addOption(jsonOption());
}

/** "30s" / "10m" / "1h" / "45" (seconds) → seconds. */
export function parseDuration(text: string, flag: string): number {
  const m = /^(\d+)\s*(s|m|h)?$/.exec(text.trim());
  if (!m) throw new VmhubError('InvalidInput', `${flag} ${JSON.stringify(text)} is not a duration; e.g. 30s, 10m or 1h`);
  return Number(m[1]) * { s: 1, m: 60, h: 3600 }[(m[2] ?? 's') as 's' | 'm' | 'h'];
}

function wholeNumber(text: string | undefined, flag: string): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text)) throw new VmhubError('InvalidInput', `${flag} must be a whole number, e.g. ${flag} 1`);
  return Number(text);
}

/** `east-1,dc=dc-west,ring=canary` → the wave's selector. */
export function parseWave(text: string): WaveSpec {
  const wave: WaveSpec = {};
  for (const term of text
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t !== '')) {
    const eq = term.indexOf('=');
    if (eq < 0) (wave.sddcs ??= []).push(validateSddcName(term, '--wave SDDC'));
    else if (term.slice(0, eq) === 'dc') (wave.dataCenters ??= []).push(term.slice(eq + 1));
    else (wave.labels ??= {})[term.slice(0, eq)] = term.slice(eq + 1);
  }
  return wave;
}

/** The waves the flags give (none: the image's stored policy), each with the gate the flags set. */
export function wavesOf(flags: WaveFlags): WaveSpec[] {
  if (flags.plan !== undefined) {
    if (flags.wave) throw new VmhubError('InvalidInput', 'give the waves with --plan or with --wave, not both');
    let parsed: unknown;
    try {
      parsed = JSON.parse(fs.readFileSync(flags.plan, 'utf8'));
    } catch (err) {
      throw new VmhubError('InvalidInput', `--plan ${flags.plan} is not a readable JSON file: ${(err as Error).message}`);
    }
    if (!Array.isArray(parsed)) throw new VmhubError('InvalidInput', `--plan ${flags.plan} must hold a JSON list of waves`);
    return parsed as WaveSpec[];
  }
  const gate: GateSpec = {};
  if (flags.instantiate === false) gate.instantiate = false;
  if (flags.operatorCheck) gate.operatorCheck = flags.operatorCheck;
  if (flags.bake !== undefined) gate.bakeSeconds = parseDuration(flags.bake, '--bake');
  if (flags.guestTimeout !== undefined) gate.guestTimeoutSeconds = parseDuration(flags.guestTimeout, '--guest-timeout');
  const maxFailures = wholeNumber(flags.maxFailures, '--max-failures');
  const maxFailurePercent = wholeNumber(flags.maxFailurePercent, '--max-failure-percent');
  if (maxFailures !== undefined) gate.maxFailures = maxFailures;
  if (maxFailurePercent !== undefined) gate.maxFailurePercent = maxFailurePercent;
  const approve = new Set(
    (flags.approve ?? '')
      .split(',')
      .filter((t) => t.trim() !== '')
      .map((t) => wholeNumber(t.trim(), '--approve')!),
  );
  const waves = (flags.wave ?? []).map((w, i) => ({
    ...parseWave(w),
    ...(approve.has(i + 1) ? { approval: true } : {}),
    ...(Object.keys(gate).length > 0 ? { gate } : {}),
  }));
  for (const k of approve) {
    if (k < 1 || k > waves.length) throw new VmhubError('InvalidInput', `--approve ${k}: there are ${waves.length} waves`);
  }
  return waves;
}

/** Who the operator is, for the rollout's record: `--by`, else VMHUB_OPERATOR, else the login name. */
export function operatorName(by: string | undefined): string {
  return by ?? process.env.VMHUB_OPERATOR ?? os.userInfo().username;
}

/** A rollout's workflow ID, from the ID itself or `<image>:<channel>`. */
export function rolloutId(ref: string): string {
  return ref.startsWith('rollout:') ? ref : `rollout:${ref}`;
}

/** Starts a Rollout; one of the same channel (or version) running already is refused, naming it. */
export async function startRollout(client: Client, config: Config, raw: RolloutInput): Promise<WorkflowHandle> {
  const input = validateRolloutInput(raw);
  const workflowId = rolloutWorkflowId(input.image, input.channel ?? input.version);
  try {
    return await client.workflow.start('Rollout', {
      args: [input],
      taskQueue: config.taskQueue,
      workflowId,
      staticSummary: `${input.rollback ? 'Roll back' : 'Roll out'} ${input.image} ${input.version}${input.channel ? ` on channel ${input.channel}` : ''}`,
    });
  } catch (err) {
    if ((err as Error).name === 'WorkflowExecutionAlreadyStartedError') {
      throw new VmhubError(
        'RolloutInProgress',
        `a rollout of ${input.image} ${input.channel ? `channel ${input.channel}` : input.version} is running: ${workflowId}; see it with \`vmhub rollout status ${workflowId}\`, and approve, pause, resume or abort it the same way`,
      );
    }
    throw err;
  }
}

export interface RolloutOutcome {
  workflowId: string;
  progress: RolloutProgress;
  /** Why it did not complete: RolloutHalted or RolloutAborted and its message. */
  failure?: { type: string; message: string };
}

const POLL_MS = 1000;

/** Follows a rollout to its end, printing each change of its waves on stderr; a halt or an abort is an outcome, not an error. */
export async function followRollout(handle: WorkflowHandle, io: CliIo): Promise<RolloutOutcome> {
  let last = '';
  let ended = false;
  const result = handle.result().finally(() => (ended = true));
  result.catch(() => undefined);
  while (!ended) {
    const p = await handle.query<RolloutProgress>(ROLLOUT_QUERY).catch(() => undefined);
    const line = p ? progressLine(p) : '';
    if (line && line !== last) errLine(io, line);
    last = line || last;
    await Promise.race([result.catch(() => undefined), new Promise((r) => setTimeout(r, POLL_MS))]);
  }
  try {
    return { workflowId: handle.workflowId, progress: (await result) as RolloutProgress };
  } catch (err) {
    const cause = err instanceof WorkflowFailedError ? err.cause : undefined;
    if (cause instanceof ApplicationFailure && (cause.type === 'RolloutHalted' || cause.type === 'RolloutAborted')) {
      return {
        workflowId: handle.workflowId,
        progress: cause.details?.[0] as RolloutProgress,
        failure: { type: cause.type, message: cause.message },
      };
    }
    throw err;
  }
}

function progressLine(p: RolloutProgress): string {
  const w = p.waves[p.wave - 1];
  const at = w ? `wave ${p.wave} of ${p.waves.length} (${w.name}): ${w.state}` : p.state;
  return `rollout ${p.image}@${p.version}: ${at}${p.waitingFor ? `; waiting for ${p.waitingFor}` : ''}`;
}

/** The waves, one line each, as a rollout's outcome and `rollout status` show them. */
export function waveLines(p: RolloutProgress): string[] {
  const lines = p.waves.map((w, k) => {
    const ended = Object.values(w.counts).reduce((n, c) => n + (c ?? 0), 0);
    const counts = Object.entries(w.counts)
      .map(([s, n]) => `${n} ${s}`)
      .join(', ');
    const approved = w.approvedBy ? `; approved by ${w.approvedBy}` : '';
    return `  ${k + 1}. ${w.name}: ${w.state}, ${ended} of ${plural(w.sddcs, 'SDDC')} done${counts ? ` (${counts})` : ''}${approved}`;
  });
  const failed = p.waves.flatMap((w) => w.failed.map((r) => `     ${r.sddc}: ${r.reason ?? r.status}`));
  const actions = p.actions.map(
    (a) => `  ${a.at} ${a.action}${a.wave ? ` wave ${a.wave}` : ''} by ${a.by}${a.reason ? `: ${a.reason}` : ''}`,
  );
  return [...lines, ...failed, ...(actions.length > 0 ? ['actions:', ...actions] : [])];
}
