/**
 * What the engines of long steps (staging, inspection, replication) are given by whoever drives them:
 * an activity binds these to its heartbeat and logger, a test to anything it likes.
 */
export interface Liveness<D> {
  /** Reports progress now: `details` are what a retry resumes from. */
  beat(details: D): void;
  /** Runs fn while calling `beat` on a timer too, so a step that makes no progress for a while still shows life. */
  keepBeating<T>(fn: () => Promise<T>, beat: () => void): Promise<T>;
}

export interface Log {
  info(message: string, meta?: Record<string, unknown>): void;
  warn(message: string, meta?: Record<string, unknown>): void;
}
