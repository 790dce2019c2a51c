import { agentQuickTaskQueueOf } from '../shared/task-queues';
import type { AgentPollers } from '../shared/agent-pollers';
import type { TemporalView } from '../temporal/connection';

/**
 * How recently an agent must have polled to count as alive. Its quick queue always has a free slot, so
 * it polls at least once a minute (a long poll's length); an agent of an older build polls only its long
 * queue, and stops while every slot downloads: five minutes still counts it alive.
 */
export const AGENT_ALIVE_MS = 5 * 60_000;

/** Pollers seen within `withinMs` on an agent's long queue (`taskQueue`, as registered) and on its quick queue. */
export async function agentPollers(
  temporal: Pick<TemporalView, 'recentPollers'>,
  taskQueue: string,
  withinMs = AGENT_ALIVE_MS,
): Promise<AgentPollers> {
  const [long, quick] = await Promise.all([
    temporal.recentPollers(taskQueue, 'activity', withinMs),
    temporal.recentPollers(agentQuickTaskQueueOf(taskQueue), 'activity', withinMs),
  ]);
  return { long, quick };
}
