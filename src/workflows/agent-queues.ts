import {
  ActivityCancellationType,
  patched,
  proxyActivities,
  type ActivityInterfaceFor,
  type ActivityOptions,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { AgentActivities } from '../activities/agent';
import type { ContentLibraryActivities, LibraryTaskInput } from '../activities/content-library';
import { NON_RETRYABLE_ERROR_TYPES } from '../shared/errors';
import { agentAlive, pollersOf, quickQueueFor, type AgentPollers } from '../shared/agent-pollers';

/** Runs past this patch ask which of an agent's queues poll, and send its quick operations to its quick queue. */
export const AGENT_QUICK_QUEUE_PATCH = 'agent-quick-queue';

export interface AgentCheck {
  /** The agent polled its long or its quick queue lately. */
  alive: boolean;
  /** Where its lookups, discards and removals go: its quick queue when that has a poller, else its long queue. */
  quickQueue: string;
}

/**
 * Whether an SDDC's agent is alive, and where its quick operations go. An agent of an older build polls
 * only its long queue, which then serves them as before, so agents and workers upgrade in any order.
 */
export async function checkAgent(
  control: Pick<ActivityInterfaceFor<Activities>, 'agentsPolling'>,
  summary: string,
  input: { taskQueue: string; image?: string; version?: string },
): Promise<AgentCheck> {
  if (!patched(AGENT_QUICK_QUEUE_PATCH)) {
    const polling = await control.agentsPolling.executeWithOptions({ summary }, [input]);
    return { alive: polling !== 0, quickQueue: input.taskQueue };
  }
  const answer = await control.agentsPolling.executeWithOptions({ summary }, [{ ...input, byQueue: true }]);
  const pollers = pollersOf(answer);
  return { alive: agentAlive(pollers), quickQueue: quickQueueFor(input.taskQueue, pollers) };
}

/** Runs past this patch check all of a deploy batch's agents in one activity rather than one per SDDC. */
export const BATCH_AGENT_CHECK_PATCH = 'batch-agent-check';

/** Checks the agent of an SDDC; one made by agentChecker shares a single check among a batch's SDDCs. */
export type AgentChecker = (sddc: { name: string; taskQueue: string }) => Promise<AgentCheck>;

/**
 * The agent check of a deploy's SDDCs. A batch's SDDCs all start together, so one activity, scheduled when
 * the first of them needs it, answers for all: a hundred SDDCs schedule one check instead of a hundred.
 */
export function agentChecker(
  control: Pick<ActivityInterfaceFor<Activities>, 'agentsPolling' | 'agentsPollingEach'>,
  plan: { image?: string; version?: string; taskQueues: string[] },
): AgentChecker {
  const { image, version, taskQueues } = plan;
  if (!patched(BATCH_AGENT_CHECK_PATCH)) {
    return (sddc) =>
      checkAgent(control, `is the agent of ${sddc.name} polling ${sddc.taskQueue}?`, {
        taskQueue: sddc.taskQueue,
        image,
        version,
      });
  }
  let answers: Promise<Record<string, AgentPollers>> | undefined;
  return async (sddc) => {
    answers ??= control.agentsPollingEach.executeWithOptions(
      { summary: `are the agents of ${taskQueues.length} SDDC${taskQueues.length === 1 ? '' : 's'} polling?` },
      [{ taskQueues, image, version }],
    );
    const pollers = (await answers)[sddc.taskQueue] ?? { long: 0, quick: 0 };
    return { alive: agentAlive(pollers), quickQueue: quickQueueFor(sddc.taskQueue, pollers) };
  };
}

/**
 * Activities on the SDDC's own agent. The agent was polling a moment ago: a restart of it (even a long
 * one) resumes the work; a cancel waits until the agent has cleaned up.
 */
export function onAgent<T>(taskQueue: string, timeouts: Pick<ActivityOptions, 'startToCloseTimeout' | 'heartbeatTimeout'>) {
  return proxyActivities<T>({
    taskQueue,
    scheduleToStartTimeout: '30 minutes',
    ...timeouts,
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    retry: {
      initialInterval: '2 seconds',
      backoffCoefficient: 2,
      maximumInterval: '1 minute',
      maximumAttempts: 5,
      nonRetryableErrorTypes: NON_RETRYABLE_ERROR_TYPES,
    },
  });
}

/** A cleanup after a cancel: on the agent's quick queue, bounded, so a dead agent cannot hold the cancel up. */
function cleanupOnAgent<T>(taskQueue: string) {
  return proxyActivities<T>({
    taskQueue,
    scheduleToStartTimeout: '1 minute',
    startToCloseTimeout: '1 minute',
    retry: { maximumAttempts: 2, nonRetryableErrorTypes: NON_RETRYABLE_ERROR_TYPES },
  });
}

/**
 * Has the agent remove a partial download; says what became of it. One the agent did not remove stays for
 * the next download of the version to resume.
 */
export async function discardOnAgent(
  taskQueue: string,
  download: Parameters<AgentActivities['discardDownload']>[0],
): Promise<string> {
  const agent = cleanupOnAgent<AgentActivities>(taskQueue);
  const ref = `${download.image}@${download.version}`;
  return agent.discardDownload
    .executeWithOptions({ summary: `remove the partial download of ${ref} on ${download.sddc}` }, [download])
    .then(
      () => 'cancelled: the agent stopped and removed its partial download',
      () => `cancelled: the agent did not answer, so its partial download of ${ref} stays for the next deploy to resume`,
    );
}

/** Has the agent remove a library item a cancelled import left half made; says what became of it. */
export async function removeHalfItemOnAgent(taskQueue: string, task: LibraryTaskInput): Promise<string> {
  const agent = cleanupOnAgent<ContentLibraryActivities>(taskQueue);
  return agent.removeLibraryItem
    .executeWithOptions({ summary: `remove the half-imported item of ${task.image}@${task.version} on ${task.sddc}` }, [task])
    .then(
      () => 'cancelled: the agent stopped the import and removed the half-imported library item',
      () =>
        `cancelled: the agent did not answer, so a half-imported library item may stay in ${task.target.library} until the next deploy`,
    );
}
