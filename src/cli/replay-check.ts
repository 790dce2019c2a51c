import fs from 'node:fs';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import type { HistoryAndWorkflowId } from '@temporalio/common';
import type { ReplayResult, ReplayWorkerOptions } from '@temporalio/worker';
import type { Command } from 'commander';
import { VmhubError } from '../shared/errors';
import { examples, jsonOption } from './command';
import type { CliDeps } from './deps';
import { print, table } from './output';

/** Every workflow type the vmhub workers run (src/workflows/index.ts); a type the new code drops fails its runs' replay. */
export const WORKFLOW_TYPES = [
  'PublishImage',
  'DeployToSDDCs',
  'DeploySddcBatch',
  'RetireImage',
  'RetireSddcBatch',
  'ApplyRetention',
  'VerifyReplicas',
  'VerifySddcs',
  'CheckServices',
  'Rollout',
] as const;

export interface ReplayCheckOptions {
  /** The new build's workflow bundle (`npm run build:bundle`); without it, the workflow code of this checkout. */
  bundle?: string;
  /** Closed runs are replayed too when they closed within this many hours: they cover paths open runs may not. */
  closedWithinHours: number;
  /** At most this many closed runs; every open run is always replayed. */
  closedLimit: number;
}

export interface ReplayFailure {
  workflowId: string;
  runId: string;
  type: string;
  open: boolean;
  /** The SDK's reason, first line, shortened: what mismatched, never a payload. */
  reason: string;
}

export interface ReplayCheckResult {
  workflowCode: string;
  taskQueue: string;
  open: number;
  closed: number;
  /** More runs closed in the window than were replayed. */
  closedLimitReached: boolean;
  failures: ReplayFailure[];
}

/** Replays histories against workflow code; the real one is the SDK's replay worker. */
export type Replayer = (
  code: Pick<ReplayWorkerOptions, 'workflowBundle' | 'workflowsPath' | 'bundlerOptions' | 'interceptors' | 'sinks'>,
  histories: AsyncIterable<HistoryAndWorkflowId>,
) => AsyncIterable<ReplayResult>;

const replayWithWorker: Replayer = (code, histories) => {
  // Loaded here: the replay worker's native runtime is for this command only.
  const { Worker } = require('@temporalio/worker') as typeof import('@temporalio/worker');
  return Worker.runReplayHistories(code, histories);
};

interface Run {
  workflowId: string;
  runId: string;
  type: string;
  open: boolean;
}

/** The visibility query for vmhub's runs on one task queue: open ones, or those closed since `closedSince`. */
export function replayQuery(taskQueue: string, closedSince?: Date): string {
  if (/['"\\]/.test(taskQueue))
    throw new VmhubError('InvalidInput', `task queue name ${JSON.stringify(taskQueue)} has a quote in it`);
  const base = `TaskQueue = '${taskQueue}' AND WorkflowType IN (${WORKFLOW_TYPES.map((t) => `'${t}'`).join(', ')})`;
  return closedSince
    ? `${base} AND ExecutionStatus != 'Running' AND CloseTime > '${closedSince.toISOString()}'`
    : `${base} AND ExecutionStatus = 'Running'`;
}

async function listRuns(client: Client, query: string, open: boolean, limit = Infinity): Promise<{ runs: Run[]; more: boolean }> {
  const runs: Run[] = [];
  for await (const w of client.workflow.list({ query, pageSize: Math.min(limit + 1, 1000) })) {
    if (runs.length >= limit) return { runs, more: true };
    runs.push({ workflowId: w.workflowId, runId: w.runId, type: w.type, open });
  }
  return { runs, more: false };
}

/** Histories are fetched one at a time as the replay takes them, so a fleet's deploys are never all in memory. */
async function* historiesOf(client: Client, runs: Run[]): AsyncIterable<HistoryAndWorkflowId> {
  for (const r of runs)
    yield { workflowId: r.workflowId, history: await client.workflow.getHandle(r.workflowId, r.runId).fetchHistory() };
}

/** The part of a replay error that says what mismatched, without the SDK's preamble or a stack. */
export function replayReason(err: Error): string {
  const text = err.message.replace(/\s+/g, ' ');
  // The most specific marker first: the SDK's preamble also says "nondeterminism".
  const at = [/\[TMPRL\d+\]/, /Nondeterminism error:/, /Workflow type/i].map((m) => text.search(m)).find((i) => i >= 0) ?? -1;
  // Core's text goes on with the failure's debug form (source, stack_trace, ...): not for an operator.
  const reason = (at > 0 ? text.slice(at) : text).split(/\\?", source: /)[0];
  return reason.length > 300 ? `${reason.slice(0, 297)}...` : reason;
}

/**
 * Before new workers are deployed: replays the history of every open vmhub run on the control queue, and
 * of the recently closed ones, against the new build's workflow code. A run the code cannot replay would
 * fail its next workflow task on a new worker; it is reported by workflow ID.
 */
export async function run(
  options: ReplayCheckOptions,
  deps: CliDeps,
  replay: Replayer = replayWithWorker,
): Promise<ReplayCheckResult> {
  if (options.bundle && !fs.statSync(options.bundle, { throwIfNoEntry: false })?.isFile())
    throw new VmhubError('InvalidInput', `no workflow bundle at ${options.bundle}: build one with \`npm run build:bundle\``);
  // The worker's sinks with either code: a rollout's history calls the metrics sink, unregistered an error line.
  const { workflowSource } = require('../temporal/worker') as typeof import('../temporal/worker');
  const code = workflowSource(options.bundle ? { VMHUB_WORKFLOW_BUNDLE: path.resolve(options.bundle) } : process.env);
  const workflowCode =
    code.workflowBundle && 'codePath' in code.workflowBundle ? code.workflowBundle.codePath : 'the sources of this checkout';
  const client = await deps.temporal();
  const taskQueue = deps.config.taskQueue;
  const since = new Date(Date.now() - options.closedWithinHours * 3600_000);
  const open = await listRuns(client, replayQuery(taskQueue), true);
  const closed = await listRuns(client, replayQuery(taskQueue, since), false, options.closedLimit);
  const runs = [...open.runs, ...closed.runs];
  const byRun = new Map(runs.map((r) => [`${r.workflowId}/${r.runId}`, r]));
  const failures: ReplayFailure[] = [];
  for await (const result of replay(code, historiesOf(client, runs))) {
    if (!result.error) continue;
    const r = byRun.get(`${result.workflowId}/${result.runId}`);
    failures.push({
      workflowId: result.workflowId,
      runId: result.runId,
      type: r?.type ?? 'unknown',
      open: r?.open ?? false,
      reason: replayReason(result.error),
    });
  }
  return {
    workflowCode,
    taskQueue,
    open: open.runs.length,
    closed: closed.runs.length,
    closedLimitReached: closed.more,
    failures,
  };
}

export function renderText(r: ReplayCheckResult, closedWithinHours: number): string[] {
  const counted = `${r.open} open and ${r.closed} closed in the last ${closedWithinHours} h${r.closedLimitReached ? ' (the newest; more closed in that time)' : ''}`;
  const head = [`replayed the runs on task queue ${r.taskQueue} against ${r.workflowCode}: ${counted}`];
  if (r.failures.length === 0) return [...head, 'every run replays: the new workers can take over these runs'];
  return [
    ...head,
    `${r.failures.length} cannot be replayed by the new code; put the change behind patched() (docs/operations.md):`,
    ...table(
      ['WORKFLOW ID', 'TYPE', 'STATE', 'REASON'],
      r.failures.map((f) => [f.workflowId, f.type, f.open ? 'open' : 'closed', f.reason]),
    ),
  ];
}

function parseWhole(flag: string, text: string, max: number): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n > max)
    throw new VmhubError('InvalidInput', `${flag} expects a whole number from 0 to ${max}, got "${text}"`);
  return n;
}

export function register(program: Command, deps: CliDeps): void {
  program
    .command('replay-check')
    .description('before deploying new workers: replay the running (and recently closed) runs against the new workflow code')
    .option('--bundle <file>', "the new build's workflow bundle (npm run build:bundle); default: this checkout's workflow code")
    .option('--closed-within <hours>', 'also replay runs closed within this many hours', '24')
    .option('--closed-limit <n>', 'at most this many closed runs, the newest', '200')
    .addOption(jsonOption())
    .addHelpText(
      'after',
      examples(
        'vmhub replay-check                                   # run from the new build',
        'vmhub replay-check --bundle ../vmhub-next/dist/workflow-bundle.js',
      ),
    )
    .action(async (opts: { bundle?: string; closedWithin: string; closedLimit: string; json?: boolean }) => {
      const closedWithinHours = parseWhole('--closed-within', opts.closedWithin, 24 * 90);
      const result = await run(
        { bundle: opts.bundle, closedWithinHours, closedLimit: parseWhole('--closed-limit', opts.closedLimit, 10_000) },
        deps,
      );
      print(deps.io, Boolean(opts.json), result, () => renderText(result, closedWithinHours));
      if (result.failures.length > 0) process.exitCode = 2;
    });
}
