import { ApplicationFailure } from '@temporalio/common';
import { isVmhubError } from './errors';

/** A VmhubError becomes a non-retryable ApplicationFailure of the same type; anything else is left to retry. */
export function asFailure(err: unknown): unknown {
  if (isVmhubError(err)) return ApplicationFailure.nonRetryable(err.message, err.type);
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
