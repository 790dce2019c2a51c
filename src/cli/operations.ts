import { randomUUID } from 'node:crypto';
import { WorkflowExecutionAlreadyStartedError, WorkflowFailedError, type Client, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure, defaultPayloadConverter } from '@temporalio/common';
import type { Config } from '../config';
import {
  deployWorkflowId,
  type DeployInput,
  type DeployProgress,
  type DeployCounts,
  type DeployResult,
  type DeployResultRow,
  type FleetProgress,
} from '../shared/deploy-input';
import { errorOf } from './errors';
import { requirePollers } from './checks';
import { table } from './output';
import { checkSourceUrl } from '../source/source';
import { publishWorkflowId, type PublishInput, type PublishProgress } from '../shared/publish-input';
import { describePlacement } from '../shared/sddc-target';
import { formatBytes, plural } from '../shared/units';
import { isFleetProgress } from './run-progress';
import { countStatuses } from '../workflows/current-details';

/**
 * Starting and following vmhub's workflows from a client (the CLI, the demo): the workflow-ID
 * conventions (docs/architecture.md), summaries for the Web UI, and failures reduced to their type and message.
 */
/** Work started on a queue no worker polls would wait silently; say so instead (NoWorker). */
export function requireWorker(client: Client, config: Config, polling: 'workflows' | 'activities' = 'workflows'): Promise<void> {
  return requirePollers(client, [{ taskQueue: config.taskQueue, kind: polling === 'workflows' ? 'workflow' : 'activity' }]);
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

const COMPLETE: ReadonlySet<string> = new Set(['deployed', 'already-present']);

/** True when some SDDC ended neither deployed nor already present (failed or skipped): the CLI then exits 2. */
export function deployIncomplete(result: Pick<DeployResult, 'results' | 'counts'>): boolean {
  return (
    result.results.some((r) => !COMPLETE.has(r.status)) ||
    Object.entries(result.counts ?? {}).some(([status, n]) => !COMPLETE.has(status) && (n ?? 0) > 0)
  );
}

/** The line above a deploy's table: "deployed" only when every SDDC has the image. */
export function deployHeadline(result: Pick<DeployResult, 'image' | 'version' | 'results' | 'counts'>): string {
  const counts = countsOf(result);
  const total = Object.values(counts).reduce((n, c) => n + (c ?? 0), 0);
  const ref = `${result.image}@${result.version}`;
  const tally = Object.entries(counts)
    .filter(([, n]) => (n ?? 0) > 0)
    .map(([status, n]) => `${n} ${status}`)
    .join(', ');
  if (!deployIncomplete(result)) return `deployed ${ref} to ${plural(total, 'SDDC')} (${tally})`;
  return `deploy incomplete: ${ref} on ${plural(total, 'SDDC')}: ${tally}`;
}

/** A fleet's result carries counts beside its few rows; a small deploy's rows are all there is. */
function countsOf(result: Pick<DeployResult, 'results' | 'counts'>): DeployCounts {
  return result.counts && Object.keys(result.counts).length > 0 ? result.counts : countStatuses(result.results);
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

/** One line saying what went wrong: a failure's type and message, never a stack trace. */
export function describeFailure(err: unknown): string {
  const { type, message } = errorOf(err);
  return `${type}: ${message}`;
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

/**
 * A deploy's rows under a header: the SDDCs that have the image, then those that failed with their reason,
 * then a "skipped" section saying why each was left out. A large fleet's result lists only the failed and
 * skipped SDDCs: a first line says how the others ended.
 */
export function resultTable(result: DeployResult): string[] {
  const counts = countsOf(result);
  const total = Object.values(counts).reduce((n, c) => n + (c ?? 0), 0);
  const summary =
    total > result.results.length
      ? [
          `${plural(total, 'SDDC')}: ${Object.entries(counts)
            .map(([status, n]) => `${n} ${status}`)
            .join(', ')}`,
        ]
      : [];
  const listed = result.results.filter((r) => r.status !== 'skipped');
  const skipped = result.results.filter((r) => r.status === 'skipped');
  const rows = listed.map((r) => [
    r.sddc,
    r.dataCenter,
    r.status,
    sourceName(r),
    transferred(r),
    r.status === 'failed' ? (r.reason ?? 'no reason recorded') : (describePlacement(r) ?? r.reason ?? ''),
  ]);
  return [
    ...summary,
    ...(rows.length > 0 ? table(['SDDC', 'DATA CENTER', 'STATUS', 'SOURCE', 'TRANSFERRED', 'WHERE / REASON'], rows) : []),
    ...(skipped.length > 0
      ? [
          'skipped:',
          ...table(
            ['  SDDC', 'REASON'],
            skipped.map((r) => [`  ${r.sddc}`, r.reason ?? 'no reason recorded']),
          ).slice(1),
        ]
      : []),
  ];
}

/**
 * Where an SDDC's copy came from: a storage location, or, when nothing was fetched and no location named,
 * the verified copy already in its datastore (a library item rebuilt from it, or a copy already there).
 */
export function sourceName(row: { source?: string | null; bytesFetched?: number }): string {
  if (row.source) return row.source;
  return row.bytesFetched === 0 ? 'local copy' : '-';
}

/** What a row's download moved over the network, and what a delta deploy copied from the SDDC's own disk. */
function transferred(row: Pick<DeployResultRow, 'source' | 'bytesFetched' | 'bytesReusedLocally'>): string {
  if (row.bytesFetched === undefined) return '-';
  if (sourceName(row) === 'local copy') return 'nothing (local copy)';
  const fetched = `fetched ${formatBytes(row.bytesFetched)}`;
  return row.bytesReusedLocally ? `${fetched}, ${formatBytes(row.bytesReusedLocally)} local` : fetched;
}
