import { ApplicationFailure, TemporalFailure } from '@temporalio/common';
import { WorkflowFailedError, WorkflowNotFoundError } from '@temporalio/client';
import { CommanderError } from 'commander';
import { isVmhubError } from '../shared/errors';

/**
 * Problems only the CLI meets, beside the product's error types (src/shared/errors.ts): a service it
 * cannot reach, a queue no worker polls, a command line commander refuses, a follow interrupted by
 * Ctrl-C, a workflow ID the server does not know, a change the operator did not confirm.
 * docs/architecture.md lists both.
 */
export const CLI_ERROR_TYPES = [
  'ServiceUnavailable',
  'NoWorker',
  'UsageError',
  'Interrupted',
  'UnknownWorkflow',
  'NotConfirmed',
] as const;
export type CliErrorType = (typeof CLI_ERROR_TYPES)[number];

export class CliError extends Error {
  override name = 'CliError';
  constructor(
    readonly type: CliErrorType,
    message: string,
  ) {
    super(message);
  }
}

/** What went wrong, as `{type, message}`: a typed failure's own type, else `Error` with its first line. */
export function errorOf(err: unknown): { type: string; message: string } {
  let cause: unknown = err;
  while (
    cause instanceof WorkflowFailedError ||
    (cause instanceof TemporalFailure && !(cause instanceof ApplicationFailure) && cause.cause)
  ) {
    cause = (cause as Error).cause;
  }
  if (cause instanceof ApplicationFailure) return { type: cause.type ?? 'Error', message: cause.message };
  if (isVmhubError(cause) || cause instanceof CliError) return { type: cause.type, message: cause.message };
  if (cause instanceof WorkflowNotFoundError) {
    return { type: 'UnknownWorkflow', message: `${cause.message}; \`vmhub runs\` lists recent runs` };
  }
  if (cause instanceof CommanderError) return { type: 'UsageError', message: cause.message.replace(/^error: /, '') };
  if (cause instanceof Error) return { type: 'Error', message: cause.message.split('\n')[0] };
  return { type: 'Error', message: String(cause) };
}
