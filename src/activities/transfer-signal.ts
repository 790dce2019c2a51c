import { setMaxListeners } from 'node:events';
import { cancellationSignal } from '@temporalio/activity';

/**
 * The activity's cancellation signal, with room for the listeners of every request in flight: each Azure
 * or HTTP request adds some, and Node warns of a leak past 10.
 */
export function transferSignal(requestsInFlight: number): AbortSignal {
  const signal = cancellationSignal();
  setMaxListeners(4 * requestsInFlight + 10, signal);
  return signal;
}
