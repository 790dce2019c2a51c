import {
  WorkflowNotFoundError,
  type Client,
  type WorkflowExecutionDescription,
  type WorkflowExecutionInfo,
  type WorkflowHandle,
} from '@temporalio/client';
import type { ImageVersionRecord, RunRef } from '../catalog/image-records';
import { IMAGE_NAME, isSemver } from '../shared/names';
import { isOfChain } from '../temporal/run-chain';
import type { CliDeps } from './deps';
import { CliError } from './errors';

/**
 * Finds the run an operator means by a workflow ID (docs/architecture.md, "Workflow IDs"), for `status`,
 * `wait` and `cancel`. `publish:<image>:<version>` and `retire:<image>:<version>` name the run behind the
 * version's state: the catalog's record names it once the version is published or retired, whatever ID it
 * ran under (a publish started without --version runs as `publish:<image>:from-image-…`); otherwise the
 * ID's own latest run; and when no run has that ID, the runs of that type, image and version (search
 * attributes VmImage, VmImageVersion): the completed one, else the newest running, else the newest.
 */
export interface FoundRun {
  handle: WorkflowHandle;
  workflowId: string;
  /** The run, when it is not the latest run of its workflow ID. */
  runId: string | null;
  /** The ID typed and why another run is shown; null when the run is that ID's latest. */
  resolvedFrom: { workflowId: string; reason: string } | null;
}

export type VersionRunKind = 'publish' | 'retire';

export interface VersionRunId {
  kind: VersionRunKind;
  image: string;
  version: string;
}

const WORKFLOW_TYPES: Record<VersionRunKind, string> = { publish: 'PublishImage', retire: 'RetireImage' };

/** `publish:<image>:<version>` or `retire:<image>:<version>` read apart; undefined for any other ID. */
export function versionRunId(workflowId: string): VersionRunId | undefined {
  const m = /^(publish|retire):([^:]+):([^:]+)$/.exec(workflowId);
  if (!m || !IMAGE_NAME.test(m[2]) || !isSemver(m[3])) return undefined;
  return { kind: m[1] as VersionRunKind, image: m[2], version: m[3] };
}

/** The run whose work the version's record shows: its publisher once published, its retire once retired. */
export function stateRun(kind: VersionRunKind, record: ImageVersionRecord | null): RunRef | undefined {
  if (!record) return undefined;
  if (kind === 'retire') return record.status === 'retired' ? record.retired?.by : undefined;
  return ['available', 'retiring', 'retired'].includes(record.status) ? record.owner : undefined;
}

/** Of the runs of a type, image and version: the one that completed first, else the newest running, else the newest. */
export function pickRun<R extends { status: { name: string }; startTime: Date }>(runs: R[]): R | undefined {
  const byStart = [...runs].sort((a, b) => a.startTime.getTime() - b.startTime.getTime());
  return (
    byStart.find((r) => r.status.name === 'COMPLETED') ??
    byStart.filter((r) => r.status.name === 'RUNNING').pop() ??
    byStart[byStart.length - 1]
  );
}

export async function findRun(deps: CliDeps, typed: string): Promise<FoundRun> {
  const client = await deps.temporal();
  const ref = versionRunId(typed);
  if (ref) {
    const owner = stateRun(ref.kind, await versionRecord(deps, ref));
    const found = owner && (await ownerRun(client, typed, owner, `${ref.image}@${ref.version}`));
    if (found) return found;
  }
  if (await described(client.workflow.getHandle(typed))) {
    return { handle: client.workflow.getHandle(typed), workflowId: typed, runId: null, resolvedFrom: null };
  }
  const run = ref && pickRun(await runsOf(client, ref));
  if (!run) {
    const how = ref ? `, nor a ${WORKFLOW_TYPES[ref.kind]} run of ${ref.image}@${ref.version}` : '';
    throw new CliError('UnknownWorkflow', `no workflow ${typed}${how}; \`vmhub runs\` lists recent runs`);
  }
  const latest = await client.workflow.getHandle(run.workflowId).describe();
  const runId = latest.runId === run.runId ? null : run.runId;
  return {
    handle: client.workflow.getHandle(run.workflowId, runId ?? undefined),
    workflowId: run.workflowId,
    runId,
    resolvedFrom: { workflowId: typed, reason: `no run has that ID; found by image and version (${ref!.image}@${ref!.version})` },
  };
}

/** The catalog's record, when the catalog answers: without it the runs are still found on the server. */
async function versionRecord(deps: CliDeps, ref: VersionRunId): Promise<ImageVersionRecord | null> {
  try {
    return await (await deps.catalog()).versions.get(ref.image, ref.version);
  } catch {
    return null;
  }
}

/**
 * The run a record names: its workflow ID's latest run while that is of the owner's chain (runOwner names
 * the chain's first run), else that first run itself; undefined when the server no longer knows it.
 */
async function ownerRun(client: Client, typed: string, owner: RunRef, ref: string): Promise<FoundRun | undefined> {
  const latest = await described(client.workflow.getHandle(owner.workflowId));
  if (!latest) return undefined;
  const ours = isOfChain(latest, owner.runId);
  const runId = ours ? null : owner.runId;
  if (owner.workflowId === typed && ours)
    return { handle: client.workflow.getHandle(typed), workflowId: typed, runId, resolvedFrom: null };
  const reason =
    owner.workflowId === typed
      ? `its latest run (${latest.status.name.toLowerCase()}) did not make ${ref}'s current state; showing run ${owner.runId}, which did`
      : `${owner.workflowId} made ${ref}'s current state`;
  return {
    handle: client.workflow.getHandle(owner.workflowId, runId ?? undefined),
    workflowId: owner.workflowId,
    runId,
    resolvedFrom: { workflowId: typed, reason },
  };
}

/** The latest run of the handle's workflow ID, or undefined when the server does not know the ID. */
async function described(handle: WorkflowHandle): Promise<WorkflowExecutionDescription | undefined> {
  try {
    return await handle.describe();
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return undefined;
    throw err;
  }
}

/** Runs of the version's workflow type with its search attributes (names and versions need no quoting: both are validated). */
async function runsOf(client: Client, ref: VersionRunId): Promise<WorkflowExecutionInfo[]> {
  const query = `WorkflowType = '${WORKFLOW_TYPES[ref.kind]}' AND VmImage = '${ref.image}' AND VmImageVersion = '${ref.version}'`;
  const runs: WorkflowExecutionInfo[] = [];
  for await (const run of client.workflow.list({ query, pageSize: 100 })) {
    runs.push(run);
    if (runs.length >= 100) break;
  }
  return runs;
}
