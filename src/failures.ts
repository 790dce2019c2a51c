import { ActivityFailure, ApplicationFailure } from '@temporalio/common';
import { isVmhubError } from './errors';

/**
 * The failure an operator should see. A VmhubError becomes a non-retryable ApplicationFailure of the same
 * type; an activity's non-retryable ApplicationFailure is surfaced as itself rather than wrapped in the
 * ActivityFailure, so the workflow fails with the problem's type (`InvalidSource`, ...). Anything else is
 * left as it is, to be retried.
 */
export function asFailure(err: unknown): unknown {
  if (isVmhubError(err)) return ApplicationFailure.nonRetryable(err.message, err.type);
  if (err instanceof ActivityFailure && err.cause instanceof ApplicationFailure && err.cause.nonRetryable) return err.cause;
  return err;
}

/** Runs fn, turning a VmhubError into the failure operators see. */
export async function withFailures<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw asFailure(err);
  }
}
