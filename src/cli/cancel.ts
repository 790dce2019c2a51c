import type { Command } from 'commander';
import { cancelAndReport } from './operations';
import { examples, jsonOption } from './command';
import type { CliDeps } from './deps';
import { print, statusWord, table } from './output';
import type { CancelReport } from './cancel-report';

export interface CancelOptions {
  workflowId: string;
}

export interface CancelResult extends CancelReport {
  workflowId: string;
  /** lowercase, as everywhere in the CLI: cancelled, or how it ended if it ended otherwise first. */
  status: string;
  /** Whether the run is stopped by this cancel: false when it ended otherwise first, or still runs. */
  stopped: boolean;
}

export async function run(options: CancelOptions, deps: CliDeps): Promise<CancelResult> {
  const report = await cancelAndReport(await deps.temporal(), options.workflowId);
  const status = statusWord(report.status);
  return { ...report, status, stopped: status === 'cancelled' };
}

/** What stays done, the deploy's SDDCs with how each ended, what was cleaned up, and what is left with the command that finishes it. */
export function renderText(r: CancelResult): string[] {
  const rows = r.sddcs.map((s) => [`  ${s.sddc}`, s.status, s.reason ?? '']);
  const cleaned = cleanedUp(r);
  const said = r.done.length + rows.length + cleaned.length + r.left.length > 0;
  return [
    `${r.workflowId}: ${r.status}`,
    ...r.done.map((d) => `  done: ${d}`),
    ...(rows.length > 0 ? table(['  SDDC', 'STATUS', 'REASON'], rows) : []),
    ...cleaned,
    ...r.left.map((l) => `  left: ${l}`),
    ...(said ? [] : ['  nothing to clean up']),
  ];
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
    .argument('<workflow-id>', 'e.g. publish:ubuntu-app:2.3.1 (see `vmhub runs`)')
    .addOption(jsonOption())
    .addHelpText('after', examples('vmhub cancel publish:ubuntu-app:2.3.1'))
    .action(async (workflowId: string, opts: { json?: boolean }) => {
      const result = await run({ workflowId }, deps);
      print(deps.io, Boolean(opts.json), result, () => renderText(result));
      // A run that ended otherwise, or did not stop in time, was not cancelled: a script must know.
      if (!result.stopped) process.exitCode = 2;
    });
}
