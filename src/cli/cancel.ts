import type { Command } from 'commander';
import { cancelAndReport } from './operations';
import { examples, jsonOption } from './command';
import type { CliDeps } from './deps';
import { print, statusWord } from './output';

export interface CancelOptions {
  workflowId: string;
}

export interface CancelResult {
  workflowId: string;
  /** lowercase, as everywhere in the CLI: cancelled, or how it ended if it ended otherwise first. */
  status: string;
  /** Whether the run is stopped by this cancel: false when it ended otherwise first, or still runs. */
  stopped: boolean;
  cleanup: string[];
}

export async function run(options: CancelOptions, deps: CliDeps): Promise<CancelResult> {
  const report = await cancelAndReport(await deps.temporal(), options.workflowId);
  const status = statusWord(report.status);
  return { ...report, status, stopped: status === 'cancelled' };
}

export function renderText(r: CancelResult): string[] {
  return [
    `${r.workflowId}: ${r.status}`,
    ...(r.cleanup.length > 0 ? r.cleanup.map((c) => `  cleaned up: ${c}`) : ['  nothing to clean up']),
  ];
}

export function register(program: Command, deps: CliDeps): void {
  program
    .command('cancel')
    .description(
      'cancel a running workflow, wait for it to stop, and report what it cleaned up; exits 2 when it was not cancelled',
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
