import type { Command } from 'commander';
import { cancelAndReport } from './operations';
import { unpolledQueues } from './checks';
import { examples, jsonOption } from './command';
import type { CliDeps } from './deps';
import { print, statusWord, table } from './output';
import { findRun, type FoundRun } from './run-ref';
import type { CancelReport } from './cancel-report';

export interface CancelOptions {
  workflowId: string;
  /** Stop the run at once, without its cleanup (Temporal's terminate). */
  terminate?: boolean;
}

export interface CancelResult extends CancelReport {
  workflowId: string;
  /** lowercase, as everywhere in the CLI: cancelled, or how it ended if it ended otherwise first. */
  status: string;
  /** Whether the run is stopped by this cancel: false when it ended otherwise first, or still runs. */
  stopped: boolean;
  /** The ID asked for and why this run was cancelled, when it is another run; null otherwise. */
  resolvedFrom: FoundRun['resolvedFrom'];
  /** The run's workflow task queue, and whether a worker polls it (null once the run has closed). */
  taskQueue: string;
  workerPolling: boolean | null;
}

/**
 * Cancels the run (`publish:<image>:<version>` finds the run behind the version, run-ref.ts) and reports how
 * it ended. A run no worker polls cannot stop: the cancel is requested and the answer comes at once.
 */
export async function run(options: CancelOptions, deps: CliDeps): Promise<CancelResult> {
  const client = await deps.temporal();
  const found = await findRun(deps, options.workflowId);
  const { handle, workflowId, resolvedFrom } = found;
  const d = await handle.describe();
  const ran = { workflowId, resolvedFrom, taskQueue: d.taskQueue, done: [], cleanup: [], left: [], sddcs: [] };
  // A closed run cannot be cancelled: say how it ended (for an earlier run, cancelling the ID would reach its latest).
  if (d.status.name !== 'RUNNING') return { ...ran, status: statusWord(d.status.name), stopped: false, workerPolling: null };
  if (options.terminate && d.status.name === 'RUNNING') {
    await handle.terminate('vmhub cancel --terminate');
    return { ...ran, status: 'terminated', stopped: true, workerPolling: null };
  }
  const [idle] = await unpolledQueues(client, [d]);
  if (idle) {
    await handle.cancel();
    return { ...ran, status: 'running', stopped: false, workerPolling: false };
  }
  const report = await cancelAndReport(client, workflowId);
  const status = statusWord(report.status);
  return { ...ran, ...report, status, stopped: status === 'cancelled', workerPolling: status === 'running' ? true : null };
}

/** What stays done, the deploy's SDDCs with how each ended, what was cleaned up, and what is left with the command that finishes it. */
export function renderText(r: CancelResult): string[] {
  const found = r.resolvedFrom ? [`${r.resolvedFrom.workflowId}: ${r.resolvedFrom.reason}`] : [];
  if (r.workerPolling === false) {
    return [
      ...found,
      `${r.workflowId}: running — no worker polls task queue ${r.taskQueue}`,
      `  cancel requested, but no worker polls task queue ${r.taskQueue}, so nothing could stop the run or clean up`,
      `  start a worker on it (VMHUB_TASK_QUEUE=${r.taskQueue} npm run worker) and the run stops and cleans up,`,
      `  or stop it at once without cleanup: vmhub cancel --terminate ${r.workflowId}`,
    ];
  }
  if (r.status === 'terminated' && r.stopped) return [...found, `${r.workflowId}: terminated; no cleanup ran`];
  const rows = r.sddcs.map((s) => [`  ${s.sddc}`, s.status, s.reason ?? '']);
  const cleaned = cleanedUp(r);
  const said = r.done.length + rows.length + cleaned.length + r.left.length > 0;
  return [
    ...found,
    `${r.workflowId}: ${r.status}`,
    ...r.done.map((d) => `  done: ${d}`),
    ...(rows.length > 0 ? table(['  SDDC', 'STATUS', 'REASON'], rows) : []),
    ...cleaned,
    ...r.left.map((l) => `  left: ${l}`),
    ...(said ? [] : quiet(r)),
  ];
}

/** Nothing reported: a cancelled run had nothing to clean up; one still running has not finished stopping. */
function quiet(r: CancelResult): string[] {
  if (r.status === 'running') return [`  still stopping: follow it with \`vmhub wait ${r.workflowId}\``];
  return r.stopped ? ['  nothing to clean up'] : [];
}

/** A deploy's cleanup is in its cancelled rows' reasons; a publish says what it removed, or that what it did stays. */
function cleanedUp(r: CancelResult): string[] {
  if (r.sddcs.length > 0) return [];
  if (r.cleanup.length > 0) return r.cleanup.map((c) => `  cleaned up: ${c}`);
  return r.done.length > 0 ? ['  cleaned up: nothing; what is done stays'] : [];
}

export function register(program: Command, deps: CliDeps): void {
  program
    .command('cancel')
    .description(
      'cancel a running workflow, wait for it to stop, and report what it did, cleaned up and left; exits 2 when it was not cancelled',
    )
    .argument('<workflow-id>', 'e.g. publish:ubuntu-app:2.3.1, the run behind that version whatever its ID (see `vmhub runs`)')
    .option('--terminate', 'stop the run at once, without its cleanup (for a run no worker polls, or one that does not stop)')
    .addOption(jsonOption())
    .addHelpText('after', examples('vmhub cancel publish:ubuntu-app:2.3.1', 'vmhub cancel --terminate publish:ubuntu-app:2.3.1'))
    .action(async (workflowId: string, opts: { terminate?: boolean; json?: boolean }) => {
      const result = await run({ workflowId, terminate: opts.terminate }, deps);
      print(deps.io, Boolean(opts.json), result, () => renderText(result));
      // A run that ended otherwise, or did not stop in time, was not cancelled: a script must know.
      if (!result.stopped) process.exitCode = 2;
    });
}
