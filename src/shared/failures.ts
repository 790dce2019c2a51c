import { ActivityFailure, ApplicationFailure } from '@temporalio/common';
import { isVmhubError, NON_RETRYABLE_ERROR_TYPES } from './errors';

/**
 * The failure an operator should see. A VmhubError becomes a non-retryable ApplicationFailure of the same
 * type; an activity's non-retryable ApplicationFailure is surfaced as itself rather than wrapped in the
 * ActivityFailure, so the workflow fails with the problem's type (`InvalidSource`, ...). Anything else is
 * left as it is, to be retried.
 */
export function asFailure(err: unknown): unknown {
  if (isVmhubError(err)) return ApplicationFailure.nonRetryable(err.message, err.type);
  if (err instanceof ActivityFailure && err.cause instanceof ApplicationFailure && isFinal(err.cause)) return err.cause;
  return err;
}

/** A failure no retry can change: non-retryable by its own say, or of a type every retry policy names. */
function isFinal(failure: ApplicationFailure): boolean {
  return failure.nonRetryable || NON_RETRYABLE_ERROR_TYPES.includes(failure.type ?? '');
}

/** Runs fn, turning a VmhubError into the failure operators see. */
export async function withFailures<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw asFailure(err);
  }
}

/** How many failures a message names; the rest are counted. */
const FAILURES_NAMED = 10;

/** The first few of `total` failures, named by `name`, and how many more: a message stays short whatever the fleet. */
export function nameFirstFew<T>(failed: T[], name: (f: T) => string, total = failed.length): string {
  const named = failed.slice(0, FAILURES_NAMED).map(name);
  if (total > named.length) named.push(`${total - named.length} more`);
  return named.join('; ');
}
