import { setMaxListeners } from 'node:events';

/** Gives `signal` room for the listeners of `requestsInFlight` requests at once. */
export function withListenerRoom(signal: AbortSignal, requestsInFlight: number): AbortSignal {
  setMaxListeners(4 * requestsInFlight + 10, signal);
  return signal;
}

/** How long a write already under way may go on after its activity is cancelled. */
export const WRITE_GRACE_MS = 30_000;

/**
 * Runs a write to storage that a cancel lets finish, for a while. Aborting a request whose body is sent
 * does not stop the service from applying it, so a write aborted mid-flight could land after the cleanup
 * that follows a cancel; waiting for its answer means the activity ends only once its writes have.
 */
export async function letFinish<T>(signal: AbortSignal, write: (signal: AbortSignal) => Promise<T>): Promise<T> {
  signal.throwIfAborted();
  const late = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const onAbort = () => {
    timer = setTimeout(() => late.abort(signal.reason), WRITE_GRACE_MS);
  };
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    return await write(late.signal);
  } finally {
    signal.removeEventListener('abort', onAbort);
    clearTimeout(timer);
  }
}
