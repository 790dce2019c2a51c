import { randomUUID } from 'node:crypto';
import { WorkflowExecutionAlreadyStartedError, WorkflowFailedError, type Client, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure, defaultPayloadConverter } from '@temporalio/common';
import type { Catalog } from '../catalog/catalog';
import type { ImageVersionRecord, RunRef } from '../catalog/image-records';
import type { Config } from '../config';
import { VmhubError } from '../shared/errors';
import { retireWorkflowId, type RetireInput } from '../shared/lifecycle-input';
import {
  deployWorkflowId,
  type DeployInput,
  type DeployCounts,
  type DeployResult,
  type DeployResultRow,
} from '../shared/deploy-input';
import { errorOf } from './errors';
import { requirePollers } from './checks';
import { loadTemporal } from './services';
import { table } from './output';
import { checkSourceUrl } from '../source/source';
import { publishWorkflowId, type PublishInput } from '../shared/publish-input';
import { describeSddcs } from '../shared/names';
import { describePlacement } from '../shared/sddc-target';
import { formatBytes, plural } from '../shared/units';
import { cancelReport, type CancelReport } from './cancel-report';
import { countStatuses } from '../workflows/current-details';

/**
 * Starting and following vmhub's workflows from a client (the CLI, the demo): the workflow IDs and their
 * reuse (docs/architecture.md, "Workflow IDs"), summaries for the Web UI, and failures reduced to their type and message.
 */
/** Work started on a queue no worker polls would wait silently; say so instead (NoWorker). */
export function requireWorker(client: Client, config: Config, polling: 'workflows' | 'activities' = 'workflows'): Promise<void> {
  return requirePollers(client, [{ taskQueue: config.taskQueue, kind: polling === 'workflows' ? 'workflow' : 'activity' }]);
}

/**
 * A publish's start, or what the catalog answers instead: the version is published already with the bytes
 * --sha256 names (docs/architecture.md, "Workflow IDs").
 */
export type PublishStart = { handle: WorkflowHandle } | { published: ImageVersionRecord };

/**
 * Starts a publish. With a version its workflow ID is `publish:<image>:<version>`, the run that makes the
 * version's state, and starting the same publish while it runs attaches to it; a different publish of that
 * version running under the ID, or one another run is making, is a VersionConflict rather than a silent
 * attach. A version already available starts no run under that ID: the same --sha256 answers from the
 * catalog, another is a VersionConflict, and bytes not known (no --sha256, or a deploy to run) are compared
 * by a run of its own, `publish:<image>:<version>:republish-…`. Without a version the ID is unique to this
 * start, since the version is only known once the image is read.
 */
export async function startPublish(
  client: Client,
  config: Config,
  catalog: Pick<Catalog, 'versions'>,
  input: PublishInput,
): Promise<PublishStart> {
  // A URL carrying a secret is refused here, before it would be written into the workflow's history.
  if (isUrl(input.source)) checkSourceUrl(input.source);
  const { version } = input;
  if (version === undefined) {
    return {
      handle: await startPublishRun(client, config, input, publishWorkflowId(input.image, `from-image-${uniqueSuffix()}`)),
    };
  }
  const workflowId = publishWorkflowId(input.image, version);
  return startUnderVersionId(
    async () => {
      const record = await catalog.versions.get(input.image, version);
      const plan = planPublish({ ...input, version }, record);
      if (plan.kind === 'published') return { published: record! };
      if (plan.kind === 'compare') {
        return { handle: await startPublishRun(client, config, input, `${workflowId}:republish-${uniqueSuffix()}`) };
      }
      if (plan.kind === 'owned' && !(await loadTemporal().temporalView(client).isClosed(plan.owner))) {
        throw new VmhubError(
          'VersionConflict',
          `${input.image}@${version} is being published by workflow ${plan.owner.workflowId}; follow it with \`vmhub wait ${plan.owner.workflowId}\` or cancel it`,
        );
      }
      return undefined;
    },
    async (reuse) => {
      try {
        return await startPublishRun(client, config, input, workflowId, reuse);
      } catch (err) {
        if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
        const holder = client.workflow.getHandle(workflowId);
        if ((await holder.describe()).status.name !== 'RUNNING') throw err;
        return attach(holder, input);
      }
    },
  );
}

export type PublishPlan = { kind: 'start' | 'published' | 'compare' } | { kind: 'owned'; owner: RunRef };

/**
 * What a publish of a version does, from the version's record: start under its ID (not in the catalog, or
 * its last publish failed), answer that it is published (the same --sha256, nothing to deploy), compare the
 * bytes in a run of its own, or wait for the run that owns the claim. Other bytes or a retired version are
 * a VersionConflict.
 */
export function planPublish(input: PublishInput & { version: string }, record: ImageVersionRecord | null): PublishPlan {
  const ref = `${input.image}@${input.version}`;
  if (!record || record.status === 'failed' || record.status === 'cancelled') return { kind: 'start' };
  if (record.status === 'retiring' || record.status === 'retired') {
    const by = record.retired?.by.workflowId;
    throw new VmhubError(
      'VersionConflict',
      `${ref} is ${record.status}${by ? ` (by ${by})` : ''}; publish it under a new version`,
    );
  }
  const owner = record.owner;
  if (record.status === 'uploading') {
    return owner && owner.workflowId !== publishWorkflowId(input.image, input.version)
      ? { kind: 'owned', owner }
      : { kind: 'start' };
  }
  const pinned = input.sha256?.toLowerCase();
  if (pinned && record.sha256 && pinned !== record.sha256.toLowerCase()) {
    throw new VmhubError(
      'VersionConflict',
      `${ref} is already published by ${owner?.workflowId ?? 'an earlier run'} with SHA-256 ${record.sha256}, not ${pinned}; publish other bytes under a new version`,
    );
  }
  return pinned && record.sha256 && !input.deployTo?.length ? { kind: 'published' } : { kind: 'compare' };
}

/**
 * Starts a run under a version's workflow ID (docs/architecture.md, "Workflow IDs"). `answer` reads the
 * catalog first and answers instead of a start when the version's state says so. The first start takes the
 * ID over only from a run that failed, was cancelled or terminated, never from one that completed: such a
 * run has just made the version's state (the catalog, read again, answers), or made none the catalog shows
 * (a catalog restored from before it), and is then replaced.
 */
async function startUnderVersionId<A>(
  answer: () => Promise<A | undefined>,
  start: (reuse: 'ALLOW_DUPLICATE_FAILED_ONLY' | 'ALLOW_DUPLICATE') => Promise<WorkflowHandle>,
): Promise<A | { handle: WorkflowHandle }> {
  let holder: unknown;
  for (const reuse of ['ALLOW_DUPLICATE_FAILED_ONLY', 'ALLOW_DUPLICATE'] as const) {
    const answered = await answer();
    if (answered !== undefined) return answered;
    try {
      return { handle: await start(reuse) };
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
      holder = err;
    }
  }
  throw holder;
}

function startPublishRun(
  client: Client,
  config: Config,
  input: PublishInput,
  workflowId: string,
  reuse: 'ALLOW_DUPLICATE_FAILED_ONLY' | 'ALLOW_DUPLICATE' = 'ALLOW_DUPLICATE_FAILED_ONLY',
): Promise<WorkflowHandle> {
  return client.workflow.start('PublishImage', {
    args: [input],
    taskQueue: config.taskQueue,
    workflowId,
    workflowIdConflictPolicy: 'FAIL',
    workflowIdReusePolicy: reuse,
    staticSummary: `Publish ${input.image} ${input.version ?? '(version from the image)'} from ${input.source}`,
    staticDetails: `Source: \`${input.source}\`${input.deployTo?.length ? `\n\nThen deploy to: ${describeSddcs(input.deployTo)}` : ''}`,
  });
}

/** The running publish under the ID when it publishes the same as `input`; VersionConflict otherwise. */
async function attach(running: WorkflowHandle, input: PublishInput): Promise<WorkflowHandle> {
  const runningInput = await startInput<PublishInput>(running);
  if (runningInput && samePublish(runningInput, input)) return running;
  throw ApplicationFailure.nonRetryable(
    `${input.image}@${input.version} is being published from ${runningInput?.source ?? 'another source'} by workflow ${running.workflowId}; wait for it or cancel it`,
    'VersionConflict',
  );
}

/** The input a run was started with, from its first history event (a reset keeps it). */
export async function startInput<T>(handle: WorkflowHandle): Promise<T | undefined> {
  const started = await handle.fetchHistory().then((h) => h.events?.[0]?.workflowExecutionStartedEventAttributes?.input);
  const [input] = (started?.payloads ?? []).map((p) => defaultPayloadConverter.fromPayload<T>(p));
  return input;
}

/**
 * Starts a retire under `retire:<image>:<version>`, joining one that runs; a version the catalog shows
 * retired starts nothing and names the run that retired it.
 */
export async function startRetire(
  client: Client,
  config: Config,
  catalog: Pick<Catalog, 'versions'>,
  input: RetireInput,
): Promise<{ handle: WorkflowHandle } | { retiredBy: string }> {
  const workflowId = retireWorkflowId(input.image, input.version);
  return startUnderVersionId(
    async () => {
      const record = await catalog.versions.get(input.image, input.version);
      return record?.status === 'retired' ? { retiredBy: record.retired?.by.workflowId ?? workflowId } : undefined;
    },
    (reuse) =>
      client.workflow.start('RetireImage', {
        args: [input],
        taskQueue: config.taskQueue,
        workflowId,
        workflowIdConflictPolicy: 'USE_EXISTING',
        workflowIdReusePolicy: reuse,
        staticSummary: `Retire ${input.image} ${input.version}`,
      }),
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
    describeSddcs(a.deployTo ?? []) === describeSddcs(b.deployTo ?? []) &&
    Boolean(a.deployAllOrNothing) === Boolean(b.deployAllOrNothing)
  );
}

function uniqueSuffix(): string {
  return `${new Date().toISOString().replace(/[:.]/g, '')}-${randomUUID().slice(0, 6)}`;
}

export function startDeploy(client: Client, config: Config, input: DeployInput): Promise<WorkflowHandle> {
  return client.workflow.start('DeployToSDDCs', {
    args: [input],
    taskQueue: config.taskQueue,
    workflowId: deployWorkflowId(input.image, input.version, uniqueSuffix()),
    staticSummary: `Deploy ${input.image} ${input.version} to ${describeSddcs(input.sddcs)}`,
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
 * Cancels a publish or deploy and waits (up to `timeoutMs`) for it to stop, then reports, from the run's
 * own progress, what it did, what it cleaned up and what is left (src/cli/cancel-report.ts).
 */
export async function cancelAndReport(
  client: Client,
  workflowId: string,
  timeoutMs = 60_000,
): Promise<{ workflowId: string; status: string } & CancelReport> {
  const handle = client.workflow.getHandle(workflowId);
  await handle.cancel();
  const deadline = Date.now() + timeoutMs;
  let status = (await handle.describe()).status.name as string;
  while (status === 'RUNNING' && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 250));
    status = (await handle.describe()).status.name;
  }
  return { workflowId, status, ...(await cancelReport(client, workflowId)) };
}

/** One line saying what went wrong: a failure's type and message, never a stack trace. */
export function describeFailure(err: unknown): string {
  const { type, message } = errorOf(err);
  return `${type}: ${message}`;
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
