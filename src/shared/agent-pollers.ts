import { agentQuickTaskQueueOf } from './task-queues';

/** Agents seen polling an SDDC's long queue and its quick queue lately; either one means the agent is alive. */
export interface AgentPollers {
  long: number;
  quick: number;
}

/**
 * `agentsPolling` answers a number (the pollers of both queues) unless asked by queue, and a control
 * worker of an older build always does: a number tells nothing of the quick queue, so it is not used.
 */
export function pollersOf(answer: number | AgentPollers): AgentPollers {
  return typeof answer === 'number' ? { long: answer, quick: 0 } : answer;
}

export function agentAlive(p: AgentPollers): boolean {
  return p.long + p.quick > 0;
}

/**
 * Where an agent's quick operations go: its quick queue while that has a poller; else its long queue,
 * which an agent of an older build polls for everything and every build still serves them on.
 */
export function quickQueueFor(taskQueue: string, p: AgentPollers): string {
  return p.quick > 0 ? agentQuickTaskQueueOf(taskQueue) : taskQueue;
}
