import { heartbeat } from '@temporalio/activity';
import type { Liveness } from '../engine/liveness';

/** Well inside every activity's heartbeat timeout (15 s for transfers), so a slow step never looks like a dead worker. */
export const BEAT_INTERVAL_MS = 5_000;

/**
 * Runs fn while beating on a timer as well as whenever fn itself beats: a step that makes no progress for a
 * while (a slow block, a long commit, a vCenter task) still shows a live worker.
 */
export async function keepBeating<T>(fn: () => Promise<T>, beat: () => void = () => heartbeat()): Promise<T> {
  const timer = setInterval(beat, BEAT_INTERVAL_MS);
  try {
    return await fn();
  } finally {
    clearInterval(timer);
  }
}

/** An engine's liveness in an activity: its progress is the activity's heartbeat details. */
export const heartbeatLiveness: Liveness<unknown> = { beat: heartbeat, keepBeating };
