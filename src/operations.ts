import { randomUUID } from 'node:crypto';
import { WorkflowExecutionAlreadyStartedError, WorkflowFailedError, type Client, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure, defaultPayloadConverter, TemporalFailure } from '@temporalio/common';
import type { Config } from './config';
import {
  deployWorkflowId,
  type DeployInput,
  type DeployProgress,
  type DeployResult,
  type DeployResultRow,
  type FleetProgress,
} from './deploy/input';
import { isVmhubError } from './errors';
import { checkSourceUrl } from './source/source';
import { temporalView } from './temporal';
import { publishWorkflowId, type PublishInput, type PublishProgress } from './publish/input';
import { describePlacement } from './sddc/target';
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
  const pollers = await temporalView(client).recentPollers(config.taskQueue, polling === 'workflows' ? 'workflow' : 'activity');
  if (pollers === 0) {
    throw new Error(`no worker is polling task queue ${config.taskQueue}; start one with \`npm run worker\``);
  }
}

/**
 * Starts a publish. With a version its workflow ID is `publish:<image>:<version>`, and starting the same
 * publish while it runs attaches to it; a different publish of that version running under the ID is a
 * VersionConflict rather than a silent attach. Without a version the ID is unique to this start, since
 * the version is only known once the image is read.
 */
export async function startPublish(client: Client, config: Config, input: PublishInput): Promise<WorkflowHandle> {
  // A URL carrying a secret is refused here, before it would be written into the workflow's history.
  if (isUrl(input.source)) checkSourceUrl(input.source);
  const workflowId = publishWorkflowId(input.image, input.version ?? `from-image-${uniqueSuffix()}`);
  try {
    return await client.workflow.start('PublishImage', {
      args: [input],
      taskQueue: config.taskQueue,
      workflowId,
      workflowIdConflictPolicy: 'FAIL',
      staticSummary: `Publish ${input.image} ${input.version ?? '(version from the image)'} from ${input.source}`,
      staticDetails: `Source: \`${input.source}\`${input.deployTo?.length ? `\n\nThen deploy to: ${input.deployTo.join(', ')}` : ''}`,
    });
  } catch (err) {
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
  }
  const running = client.workflow.getHandle(workflowId);
  const started = await running.fetchHistory().then((h) => h.events?.[0]?.workflowExecutionStartedEventAttributes?.input);
  const [runningInput] = (started?.payloads ?? []).map((p) => defaultPayloadConverter.fromPayload<PublishInput>(p));
  if (runningInput && samePublish(runningInput, input)) return running;
  throw ApplicationFailure.nonRetryable(
    `${input.image}@${input.version} is being published from ${runningInput?.source ?? 'another source'} by workflow ${workflowId}; wait for it or cancel it`,
    'VersionConflict',
  );
}

function isUrl(source: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(source);
}

function samePublish(a: PublishInput, b: PublishInput): boolean {
  return (
    a.source === b.source &&
    a.image === b.image &&
    a.version === b.version &&
    a.format === b.format &&
    a.sha256?.toLowerCase() === b.sha256?.toLowerCase() &&
    (a.deployTo ?? []).join(',') === (b.deployTo ?? []).join(',')
  );
}

function uniqueSuffix(): string {
  return `${new Date().toISOString().replace(/[:.]/g, '')}-${randomUUID().slice(0, 6)}`;
}

export function startDeploy(client: Client, config: Config, input: DeployInput): Promise<WorkflowHandle> {
  const targets = input.sddcs === 'all' ? 'all SDDCs' : input.sddcs.join(', ');
  return client.workflow.start('DeployToSDDCs', {
    args: [input],
    taskQueue: config.taskQueue,
    workflowId: deployWorkflowId(input.image, input.version, uniqueSuffix()),
    staticSummary: `Deploy ${input.image} ${input.version} to ${targets}`,
  });
}

/**
 * How a deploy ended: its result, also when some SDDCs failed (the run then fails with DeployIncomplete,
 * whose details carry every row). Anything else is thrown.
 */
export async function deployOutcome(handle: WorkflowHandle): Promise<DeployResult> {
  try {
    return (await handle.result()) as DeployResult;
  } catch (err) {
    const cause = err instanceof WorkflowFailedError ? err.cause : undefined;
    if (cause instanceof ApplicationFailure && cause.type === 'DeployIncomplete') return cause.details?.[0] as DeployResult;
    throw err;
  }
}

/** True when some SDDC ended neither deployed nor already present: the CLI then exits 2. */
export function deployIncomplete(result: DeployResult): boolean {
  return result.results.some((r) => r.status === 'failed');
}

/**
 * Cancels a publish or deploy and waits (up to `timeoutMs`) for it to stop, then says what it cleaned
 * up: a publish reports what it removed, a deploy which SDDCs were stopped.
 */
export async function cancelAndReport(
  client: Client,
  workflowId: string,
  timeoutMs = 60_000,
): Promise<{ workflowId: string; status: string; cleanup: string[] }> {
  const handle = client.workflow.getHandle(workflowId);
  await handle.cancel();
  const deadline = Date.now() + timeoutMs;
  let status = (await handle.describe()).status.name as string;
  while (status === 'RUNNING' && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 250));
    status = (await handle.describe()).status.name;
  }
  const progress = await handle.query<PublishProgress | DeployProgress>('progress').catch(() => undefined);
  let cleanup: string[] = [];
  if (progress && 'phase' in progress) cleanup = (progress as PublishProgress).cleanup ?? [];
  else if (progress)
    cleanup = Object.values((await sddcProgress(handle)) ?? {})
      .filter((s) => s.status === 'failed' && s.reason?.startsWith('cancelled'))
      .map((s) => `${s.sddc}: ${s.reason}`);
  return { workflowId, status, cleanup };
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
  if (isVmhubError(cause)) return `${cause.type}: ${cause.message}`;
  if (cause instanceof Error) return cause.message.split('\n')[0];
  return String(cause);
}

/**
 * A deploy's progress with a row per SDDC. A fanned-out deploy's own progress has counts and its batches
 * (FleetProgress); each batch's child workflow has the rows. A batch not started yet has none.
 */
export async function sddcProgress(handle: WorkflowHandle): Promise<DeployProgress | undefined> {
  const progress = await handle.query<DeployProgress | FleetProgress>('progress').catch(() => undefined);
  if (!progress || !isFleetProgress(progress)) return progress;
  const batches = await Promise.all(
    progress.batches.map((b) =>
      handle.client
        .getHandle(b.workflowId)
        .query<DeployProgress>('progress')
        .catch((): DeployProgress => ({})),
    ),
  );
  return Object.assign({}, ...batches) as DeployProgress;
}

function isFleetProgress(progress: DeployProgress | FleetProgress): progress is FleetProgress {
  return Array.isArray(progress.batches) && typeof progress.sddcsTotal === 'number';
}

export function publishLine(p: PublishProgress): string {
  return `${p.phase.padEnd(12)} ${formatBytes(p.bytesStaged)} / ${formatBytes(p.bytesTotal)} (${p.blocksStaged}/${p.blocksTotal} blocks)`;
}

export function deployLines(progress: DeployProgress): string[] {
  return Object.values(progress).map((s) => `${s.sddc.padEnd(14)} ${(s.status ?? s.phase).padEnd(16)} ${s.source ?? '-'}`);
}

export function resultTable(result: DeployResult): string[] {
  const total = Object.values(result.counts ?? {}).reduce((n, c) => n + c, 0);
  // A large fleet's result lists only the failed and skipped SDDCs: say how the others ended.
  const summary =
    total > result.results.length
      ? [
          `${total} SDDCs: ${Object.entries(result.counts ?? {})
            .map(([status, n]) => `${n} ${status}`)
            .join(', ')}`,
        ]
      : [];
  return summary.concat(
    result.results.map(
      (r) =>
        `${r.sddc.padEnd(14)} ${r.dataCenter.padEnd(10)} ${r.status.padEnd(16)} ${(r.source ?? '-').padEnd(14)} ${transferred(r).padEnd(30)} ${r.target ? describePlacement(r.target) : (r.path ?? r.reason ?? '')}`,
    ),
  );
}

/** What a row's download moved over the network, and what a delta deploy copied from the SDDC's own disk. */
function transferred(row: Pick<DeployResultRow, 'bytesFetched' | 'bytesReusedLocally'>): string {
  if (row.bytesFetched === undefined) return '-';
  const fetched = `fetched ${formatBytes(row.bytesFetched)}`;
  return row.bytesReusedLocally ? `${fetched}, ${formatBytes(row.bytesReusedLocally)} local` : fetched;
}
