import type { Command } from 'commander';
import { VmhubError } from '../shared/errors';
import { examples, jsonOption } from './command';
import { deployResult, exitCode as deployExitCode, renderText as deployText, type DeployCliResult } from './deploy';
import type { CliDeps } from './deps';
import { errLine, print, processIo } from './output';
import { followDeploy, followPublish } from './progress';
import { unpolledQueues } from './checks';
import { findRun } from './run-ref';
import {
  exitCode as publishExitCode,
  publishResult,
  renderText as publishText,
  warnOfVersion,
  type PublishCliResult,
} from './publish';

export interface WaitOptions {
  workflowId: string;
}

/** What `publish` or `deploy` would have printed, with the workflow's type. */
export type WaitResult = ({ type: 'PublishImage' } & PublishCliResult) | ({ type: 'DeployToSDDCs' } & DeployCliResult);

/**
 * Follows a publish or deploy that is running (or has ended) to its end, as `publish` and `deploy` do.
 * `publish:<image>:<version>` follows the run behind the version (run-ref.ts); stderr says which when it is another.
 */
export async function run(options: WaitOptions, deps: CliDeps): Promise<WaitResult> {
  const io = deps.io ?? processIo;
  const { handle, resolvedFrom } = await findRun(deps, options.workflowId);
  if (resolvedFrom) errLine(io, `${resolvedFrom.workflowId}: ${resolvedFrom.reason}`);
  const { type, status, taskQueue } = await handle.describe();
  const [idle] = await unpolledQueues(await deps.temporal(), [{ status, taskQueue }]);
  if (idle) errLine(io, `no worker polls task queue ${idle}: ${handle.workflowId} waits until one does`);
  if (type === 'PublishImage') return { type, ...publishResult(handle.workflowId, await followPublish(handle, io)) };
  if (type === 'DeployToSDDCs') return { type, ...deployResult(handle.workflowId, await followDeploy(handle, io)) };
  throw new VmhubError('InvalidInput', `${options.workflowId} is a ${type}; vmhub wait follows publishes and deploys`);
}

export function renderText(r: WaitResult): string[] {
  return r.type === 'PublishImage' ? publishText(r) : deployText(r);
}

export function exitCode(r: WaitResult): number {
  return r.type === 'PublishImage' ? publishExitCode(r) : deployExitCode(r);
}

export function register(program: Command, deps: CliDeps): void {
  program
    .command('wait')
    .description('re-attach to a publish or deploy: follow it to its end and print its result as publish or deploy does')
    .argument('<workflow-id>', 'e.g. publish:ubuntu-app:2.3.1 (see `vmhub runs`)')
    .addOption(jsonOption())
    .addHelpText('after', examples('vmhub wait publish:ubuntu-app:2.3.1', 'vmhub runs --image ubuntu-app'))
    .action(async (workflowId: string, opts: { json?: boolean }) => {
      const result = await run({ workflowId }, deps);
      print(deps.io, Boolean(opts.json), result, () => renderText(result));
      if (result.type === 'PublishImage') warnOfVersion(deps, result);
      process.exitCode = exitCode(result);
    });
}
