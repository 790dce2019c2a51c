import { agentQuickTaskQueueOf } from '../shared/task-queues';
import { agentAlive, type AgentPollers } from '../shared/agent-pollers';
import { runPool } from '../shared/concurrency';
import type { TemporalView } from '../temporal/connection';

/**
 * How recently an agent must have polled to count as alive. Its quick queue always has a free slot, so
 * it polls at least once a minute (a long poll's length); an agent of an older build polls only its long
 * queue, and stops while every slot downloads: five minutes still counts it alive.
 */
export const AGENT_ALIVE_MS = 5 * 60_000;

/** Task queues asked about their pollers at once: a fleet's agents are checked in seconds, not one by one. */
const POLLER_CHECKS_AT_ONCE = 16;

/** An agent that serves its quick queue polls it at least once a long poll (a minute): 75 s without one, it is gone. */
export const QUICK_ALIVE_MS = 75_000;

/**
 * Pollers seen within `withinMs` on an agent's long queue (`taskQueue`, as registered) and on its quick
 * queue. An agent seen on its quick queue in that window but not in the last QUICK_ALIVE_MS has stopped:
 * none, rather than alive for the rest of the window on its long queue's last poll.
 */
export async function agentPollers(
  temporal: Pick<TemporalView, 'pollersWithin'>,
  taskQueue: string,
  withinMs = AGENT_ALIVE_MS,
): Promise<AgentPollers> {
  const [[long], [quick, quickLately]] = await Promise.all([
    temporal.pollersWithin(taskQueue, 'activity', [withinMs]),
    temporal.pollersWithin(agentQuickTaskQueueOf(taskQueue), 'activity', [withinMs, Math.min(withinMs, QUICK_ALIVE_MS)]),
  ]);
  return quick > 0 && quickLately === 0 ? { long: 0, quick: 0 } : { long, quick };
}

/** The pollers of each agent's queues (`taskQueues`, as registered), each asked once. */
export async function agentPollersByQueue(
  temporal: Pick<TemporalView, 'pollersWithin'>,
  taskQueues: readonly string[],
  withinMs = AGENT_ALIVE_MS,
): Promise<Record<string, AgentPollers>> {
  const answers: Record<string, AgentPollers> = {};
  await runPool([...new Set(taskQueues)], POLLER_CHECKS_AT_ONCE, async (queue) => {
    answers[queue] = await agentPollers(temporal, queue, withinMs);
  });
  return answers;
}

/** Of `items`, those whose agent (on `taskQueue`) polled neither its long nor its quick queue within `withinMs`; each queue is asked once. */
export async function withoutAgent<T extends { taskQueue: string }>(
  temporal: Pick<TemporalView, 'pollersWithin'>,
  items: readonly T[],
  withinMs = AGENT_ALIVE_MS,
): Promise<T[]> {
  const pollers = await agentPollersByQueue(
    temporal,
    items.map((t) => t.taskQueue),
    withinMs,
  );
  return items.filter((t) => !agentAlive(pollers[t.taskQueue]));
}
