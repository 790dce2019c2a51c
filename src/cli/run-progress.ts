import type { Client, WorkflowClient, WorkflowHandle } from '@temporalio/client';
import type { PayloadConverter } from '@temporalio/common';
import type { temporal } from '@temporalio/proto';
import type { DeployCounts, DeployProgress, DeployResultRow, FleetProgress, SddcProgress } from '../shared/deploy-input';
import type { PublishProgress } from '../shared/publish-input';
import { statusWord } from './output';
import { countStatuses } from '../workflows/current-details';
import { IMAGE_KEY, VERSION_KEY } from '../workflows/search-attributes';

/**
 * Where a publish or a deploy stands, to the byte. A workflow counts only what it has been told (a range
 * of blocks staged, an SDDC done); the activities in between report their bytes in heartbeat details,
 * which the server keeps with the pending activity and never writes to history. A reading combines the
 * run's `progress` query with its pending activities' heartbeats, and a run's pending children (a
 * publish's deploy, a deploy's batches) are read the same way.
 */

export interface ByteProgress {
  bytesDone: number;
  bytesTotal: number;
}

export type TransferKind = 'staging' | 'inspecting' | 'replicating' | 'downloading' | 'importing';

/** One pending long activity, from its last heartbeat (0 bytes done before the first). */
export interface Transfer extends ByteProgress {
  kind: TransferKind;
  activityId: string;
  attempt: number;
  /** The SDDC an agent works for (downloads and imports). */
  sddc?: string;
  /** The storage location read from (a download) or written to (a replication). */
  location?: string;
  /** Why the previous attempt failed, while a retry is pending or running. */
  lastFailure?: string;
}

export type RunStatus = 'running' | 'completed' | 'failed' | 'cancelled' | 'terminated' | 'timed-out' | 'continued-as-new';

interface RunReading {
  workflowId: string;
  runId: string;
  status: RunStatus;
  /** The image and version the run works on, once it has said (its search attributes). */
  image?: string;
  version?: string;
  transfers: Transfer[];
}

export interface PublishReading extends RunReading {
  kind: 'publish';
  progress: PublishProgress;
  bytesTotal: number;
  /** The workflow's staged ranges plus the blocks the pending range activities have staged. */
  bytesStaged: number;
  /** How far the pass computing the SHA-256 and metadata has read. */
  bytesInspected: number;
  /** Each replica location being written, by location. */
  replicas: Record<string, ByteProgress>;
  /** The deploy a publish with deployTo runs, once it has started. */
  deploy?: DeployReading;
}

/** An SDDC's row: `bytesDone` is what its agent has downloaded; `imported`, what it has sent to its content library. */
export interface SddcReading extends SddcProgress {
  imported?: ByteProgress;
}

export interface DeployReading extends RunReading {
  kind: 'deploy';
  sddcsTotal: number;
  /** SDDCs that ended, by status. */
  counts: DeployCounts;
  /**
   * A row per SDDC of the batches running (or, once the run closed, stopped) and of a deploy to at most
   * 100 SDDCs; a larger fleet lists the failed and skipped rows of its finished batches (the counts have the rest).
   */
  sddcs: SddcReading[];
  /** SDDCs in batches that have not started, or never did once the run closed. */
  notStarted: number;
}

export type RunReadingOf = PublishReading | DeployReading;

/** Attempts at a reading in which the run's progress did not move while its activities were described. */
const CONSISTENT_ATTEMPTS = 3;

const KINDS: Record<string, TransferKind> = {
  stageBlockRange: 'staging',
  inspectSource: 'inspecting',
  replicateImage: 'replicating',
  downloadImage: 'downloading',
  importToLibrary: 'importing',
  streamToLibrary: 'importing',
};

/**
 * Reads a publish (PublishImage) or a deploy (DeployToSDDCs, DeploySddcBatch) now. Each call costs the
 * server two queries and a describe per run read; it adds nothing to any history.
 */
export async function readProgress(client: Client | WorkflowClient, workflowId: string, runId?: string): Promise<RunReadingOf> {
  const workflows = 'workflow' in client ? client.workflow : client;
  const converter = workflows.options.loadedDataConverter.payloadConverter;
  return read(workflows, workflows.getHandle(workflowId, runId), converter);
}

async function read(client: WorkflowClient, handle: WorkflowHandle, converter: PayloadConverter): Promise<RunReadingOf> {
  const { progress, description } = await consistentRead(handle);
  const raw = description.raw;
  const attributes = description.typedSearchAttributes;
  const base: RunReading = {
    workflowId: description.workflowId,
    runId: description.runId,
    status: statusWord(description.status.name) as RunStatus,
    image: attributes.get(IMAGE_KEY),
    version: attributes.get(VERSION_KEY),
    transfers: (raw.pendingActivities ?? []).flatMap((a) => transferOf(a, converter)),
  };
  const children = await Promise.all(
    childrenToRead(base, description, progress).map((c) =>
      // A child that has not run its first task has no progress yet; it is read next time.
      read(client, client.getHandle(c.workflowId, c.runId), converter).catch(() => undefined),
    ),
  );
  const deploys = children.filter((c): c is DeployReading => c?.kind === 'deploy');
  if (description.type === 'PublishImage') return publishReading(base, progress as PublishProgress, deploys[0]);
  if (isFleetProgress(progress)) return fleetReading(base, progress, deploys);
  return batchReading(base, (progress ?? {}) as DeployProgress);
}

/**
 * The children whose rows a reading shows: those running, and, once the run has closed, those that ended
 * without handing their rows back (a cancelled batch of a fleet, the deploy of a publish), whose rows only
 * their own progress has. A batch that never started has no run, and no reading.
 */
function childrenToRead(
  base: RunReading,
  description: Description,
  progress: unknown,
): Array<{ workflowId: string; runId?: string }> {
  const pending = (description.raw.pendingChildren ?? []).map((c) => ({
    workflowId: c.workflowId!,
    runId: c.runId ?? undefined,
  }));
  if (base.status === 'running') return pending;
  const ended =
    description.type === 'PublishImage'
      ? [(progress as PublishProgress | undefined)?.deploy]
      : isFleetProgress(progress)
        ? progress.batches.filter((b) => !b.done).map((b) => b.workflowId)
        : [];
  const more = ended.filter((id): id is string => id !== undefined && !pending.some((p) => p.workflowId === id));
  return [...pending, ...more.map((workflowId) => ({ workflowId }))];
}

/**
 * The query answers with every event the server had when it got the query. A reading whose progress is
 * the same before and after the describe counts no activity twice and misses none that completed.
 */
async function consistentRead(handle: WorkflowHandle): Promise<{ progress: unknown; description: Description }> {
  let before = await handle.query<unknown>('progress');
  for (let attempt = 1; ; attempt++) {
    const description = await handle.describe();
    const after = await handle.query<unknown>('progress');
    if (attempt === CONSISTENT_ATTEMPTS || JSON.stringify(after) === JSON.stringify(before)) {
      return { progress: after, description };
    }
    before = after;
  }
}

type Description = Awaited<ReturnType<WorkflowHandle['describe']>>;

function transferOf(a: temporal.api.workflow.v1.IPendingActivityInfo, converter: PayloadConverter): Transfer[] {
  const kind = KINDS[a.activityType?.name ?? ''];
  if (!kind) return [];
  const payload = a.heartbeatDetails?.payloads?.[0];
  const beat = payload ? (converter.fromPayload<Record<string, unknown>>(payload) ?? {}) : {};
  const number = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
  const text = (v: unknown) => (typeof v === 'string' ? v : undefined);
  return [
    {
      kind,
      activityId: a.activityId ?? '',
      attempt: a.attempt ?? 1,
      bytesDone: number(beat.bytesDone),
      bytesTotal: number(beat.bytesTotal),
      sddc: text(beat.sddc),
      location: text(beat.location),
      lastFailure: a.lastFailure?.message ?? undefined,
    },
  ];
}

function publishReading(base: RunReading, progress: PublishProgress, deploy: DeployReading | undefined): PublishReading {
  const { phase, bytesTotal } = progress;
  const pending = (kind: TransferKind) => base.transfers.filter((t) => t.kind === kind);
  const staging = pending('staging').reduce((n, t) => n + t.bytesDone, 0);
  const inspection = pending('inspecting')[0];
  // The pass begins with staging: after that, an inspection no longer pending has ended.
  const inspected = inspection?.bytesDone ?? (phase === 'validating' || phase === 'probing' ? 0 : bytesTotal);
  const replicas: Record<string, ByteProgress> = {};
  for (const t of pending('replicating')) {
    if (t.location) replicas[t.location] = { bytesDone: t.bytesDone, bytesTotal: t.bytesTotal || bytesTotal };
  }
  return {
    ...base,
    kind: 'publish',
    progress,
    bytesTotal,
    bytesStaged: Math.min(bytesTotal, progress.bytesStaged + staging),
    bytesInspected: Math.min(bytesTotal, inspected),
    replicas,
    ...(deploy ? { deploy } : {}),
  };
}

export function isFleetProgress(progress: unknown): progress is FleetProgress {
  return typeof progress === 'object' && progress !== null && Array.isArray((progress as FleetProgress).batches);
}

/** A batch, or a deploy that began before deploys fanned out: a row per SDDC, moved on by its agents' heartbeats. */
function batchReading(base: RunReading, progress: DeployProgress): DeployReading {
  const sddcs = Object.values(progress).map((row): SddcReading => {
    const reading: SddcReading = { ...row };
    if (row.phase === 'done') return reading;
    for (const t of base.transfers) {
      if (t.sddc !== row.sddc) continue;
      if (t.kind === 'downloading') reading.bytesDone = Math.min(row.bytesTotal, Math.max(row.bytesDone, t.bytesDone));
      if (t.kind === 'importing') reading.imported = { bytesDone: t.bytesDone, bytesTotal: t.bytesTotal || row.bytesTotal };
    }
    // An import follows a finished download.
    if (row.phase === 'importing' || row.phase === 'instantiating') reading.bytesDone = row.bytesTotal;
    return reading;
  });
  const ended = sddcs.flatMap((s) => (s.status ? [{ status: s.status }] : []));
  return { ...base, kind: 'deploy', sddcsTotal: sddcs.length, counts: countStatuses(ended), sddcs, notStarted: 0 };
}

/** A fanned-out deploy: the rows its finished batches kept, and the rows of the batches running now (or stopped). */
function fleetReading(base: RunReading, progress: FleetProgress, batches: DeployReading[]): DeployReading {
  const running = new Set(batches.flatMap((b) => b.sddcs.map((s) => s.sddc)));
  const finished = progress.results.filter((r) => !running.has(r.sddc)).map(rowReading);
  const inFinished = Object.values(progress.counts).reduce((n, c) => n + (c ?? 0), 0);
  return {
    ...base,
    transfers: [...base.transfers, ...batches.flatMap((b) => b.transfers)],
    kind: 'deploy',
    sddcsTotal: progress.sddcsTotal,
    counts: progress.counts,
    sddcs: [...finished, ...batches.flatMap((b) => b.sddcs)],
    notStarted: Math.max(0, progress.sddcsTotal - inFinished - running.size),
  };
}

/** The reason a deploy gives an SDDC a cancel stopped: `cancelled: ` and what became of its partial download or item. */
const CANCELLED = /^cancelled(: )?/;

/**
 * How an SDDC's row stands, in a word (how it ended, `cancelled` when a cancel stopped it, else its
 * phase), and why: for a cancelled row, what its agent did about the partial download or library item.
 */
export function rowState(row: { phase: string; status?: string | null; reason?: string | null }): {
  state: string;
  reason: string;
} {
  if (row.status === 'failed' && row.reason && CANCELLED.test(row.reason)) {
    return { state: 'cancelled', reason: row.reason.replace(CANCELLED, '') };
  }
  return { state: row.status ?? row.phase, reason: row.reason ?? '' };
}

function rowReading(row: DeployResultRow): SddcReading {
  const bytes = row.bytes ?? 0;
  return {
    sddc: row.sddc,
    phase: 'done',
    source: row.source,
    bytesDone: bytes,
    bytesTotal: bytes,
    status: row.status,
    ...(row.reason !== undefined ? { reason: row.reason } : {}),
  };
}
