import { cancellationSignal } from '@temporalio/activity';
import { withListenerRoom } from '../engine/signals';

/**
 * The activity's cancellation signal, with room for the listeners of every request in flight: each Azure
 * or HTTP request adds some, and Node warns of a leak past 10.
 */
export function transferSignal(requestsInFlight: number): AbortSignal {
  return withListenerRoom(cancellationSignal(), requestsInFlight);
}
