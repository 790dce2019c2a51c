import { randomUUID } from 'node:crypto';
import { WorkflowFailedError, type Client, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure, TemporalFailure } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import type { Config } from './config';
import { deployWorkflowId, type DeployInput, type DeployProgress, type DeployResult } from './deploy/input';
import { publishWorkflowId, type PublishInput, type PublishProgress } from './publish/input';
import { formatBytes } from './units';

/**
 * Starting and following vmhub's workflows from a client (the CLI, the demo): the workflow-ID
 * conventions of SPEC §4, summaries for the Web UI, and failures reduced to their type and message.
 */
/** Work started on a queue no worker polls would wait silently; say so instead. */
export async function requireWorker(
  client: Client,
  config: Config,
  polling: 'workflows' | 'activities' = 'workflows',
): Promise<void> {
  const response = await client.workflowService.describeTaskQueue({
    namespace: config.temporal.namespace,
    taskQueue: { name: config.taskQueue },
    taskQueueType:
      polling === 'workflows'
        ? temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW
        : temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
  });
  if ((response.pollers ?? []).length === 0) {
    throw new Error(`no worker is polling task queue ${config.taskQueue}; start one with \`npm run worker\``);
  }
}

export function startPublish(client: Client, config: Config, input: PublishInput): Promise<WorkflowHandle> {
  const version = input.version ?? 'declared';
  return client.workflow.start('PublishImage', {
    args: [input],
    taskQueue: config.taskQueue,
    workflowId: publishWorkflowId(input.image, version),
    // Starting a publish that is already running attaches to it.
    workflowIdConflictPolicy: 'USE_EXISTING',
    staticSummary: `Publish ${input.image} ${input.version ?? '(version from the image)'} from ${input.source}`,
    staticDetails: `Source: \`${input.source}\`${input.deployTo?.length ? `\n\nThen deploy to: ${input.deployTo.join(', ')}` : ''}`,
  });
}

export function startDeploy(client: Client, config: Config, input: DeployInput): Promise<WorkflowHandle> {
  const targets = input.sddcs === 'all' ? 'all SDDCs' : input.sddcs.join(', ');
  return client.workflow.start('DeployToSDDCs', {
    args: [input],
    taskQueue: config.taskQueue,
    workflowId: deployWorkflowId(
      input.image,
      input.version,
      `${new Date().toISOString().replace(/[:.]/g, '')}-${randomUUID().slice(0, 6)}`,
    ),
    staticSummary: `Deploy ${input.image} ${input.version} to ${targets}`,
  });
}

/** One line saying what went wrong: a Temporal failure's type and message, never a stack trace. */
export function describeFailure(err: unknown): string {
  let cause: unknown = err;
  while (
    cause instanceof WorkflowFailedError ||
    (cause instanceof TemporalFailure && !(cause instanceof ApplicationFailure) && cause.cause)
  ) {
    cause = (cause as Error).cause;
  }
  if (cause instanceof ApplicationFailure) return `${cause.type ?? 'Error'}: ${cause.message}`;
  if (cause instanceof Error) return cause.message.split('\n')[0];
  return String(cause);
}

export function publishLine(p: PublishProgress): string {
  return `${p.phase.padEnd(12)} ${formatBytes(p.bytesStaged)} / ${formatBytes(p.bytesTotal)} (${p.blocksStaged}/${p.blocksTotal} blocks)`;
}

export function deployLines(progress: DeployProgress): string[] {
  return Object.values(progress).map((s) => `${s.sddc.padEnd(14)} ${(s.status ?? s.phase).padEnd(16)} ${s.source ?? '-'}`);
}

export function resultTable(result: DeployResult): string[] {
  return result.results.map(
    (r) =>
      `${r.sddc.padEnd(14)} ${r.dataCenter.padEnd(10)} ${r.status.padEnd(16)} ${(r.source ?? '-').padEnd(14)} ${r.path ?? r.reason ?? ''}`,
  );
}
