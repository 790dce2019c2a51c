import {
  ActivityCancellationType,
  ActivityFailure,
  ApplicationFailure,
  type ActivityOptions,
  CancellationScope,
  CancelledFailure,
  ChildWorkflowCancellationType,
  ChildWorkflowFailure,
  defineQuery,
  executeChild,
  isCancellation,
  patched,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { AgentActivities, SourceFailure } from '../activities/agent';
import type { ContentLibraryActivities, LibraryTaskInput } from '../activities/content-library';
import type { DeploymentPlan, DeploymentTarget, FleetPlan } from '../activities/deploy';
import { runPool } from '../shared/concurrency';
import { BATCH_SIZE, type SddcBatch } from '../shared/batches';
import {
  validateDeployInput,
  type DeployInput,
  type DeployProgress,
  type DeployResult,
  type DeployResultRow,
  type FleetProgress,
  type SddcPhase,
  type SddcProgress,
} from '../shared/deploy-input';
import { NON_RETRYABLE_ERROR_TYPES } from '../shared/errors';
import { asFailure } from '../shared/failures';
import { findFormat } from '../shared/image-format';
import { libraryItemName } from '../shared/target-kinds/content-library';
import type { ContentLibraryTarget } from '../shared/target-kinds/kind';
import { libraryOf } from '../shared/sddc-target';
import { formatBytes } from '../shared/units';
import { control } from './activity-options';
import { deployingLine, detailsText, outcomeLine, sddcTable } from './current-details';
import { IMAGE_KEY, SDDC_KEY, VERSION_KEY } from './search-attributes';

export const deployProgressQuery = defineQuery<DeployProgress>('progress');
export const fleetProgressQuery = defineQuery<FleetProgress>('progress');

const CANCELLED_REASON = 'cancelled: the agent stopped and removed its partial download or library import';

/** Batches deploying at once: bounds the pending child workflows of one run whatever the fleet. */
const BATCHES_AT_ONCE = 50;

/** Failed SDDCs a failure message names; the result has every failed row. */
const FAILURES_NAMED = 10;

/** The run's current details in the Web UI: a headline, then where each SDDC stands. */
class Board {
  constructor(
    readonly headline: string,
    readonly progress: DeployProgress,
  ) {}

  /** Moves an SDDC to its next phase and shows it. */
  phase(p: SddcProgress, phase: SddcPhase): void {
    p.phase = phase;
    this.show();
  }

  show(): void {
    const rows = Object.values(this.progress);
    const ended = rows.flatMap((r) => (r.status ? [{ sddc: r.sddc, status: r.status }] : []));
    const line = deployingLine(ended, rows.length, ended.length === rows.length);
    setCurrentDetails(detailsText(this.headline, line, sddcTable(rows)));
  }
}

/**
 * DeployToSDDCs: resolve the version and the SDDCs, then deploy them in batches, one child workflow
 * (DeploySddcBatch) per data center or per 100 SDDCs of one, so no history grows with the fleet. One SDDC
 * failing never stops the others; the run completes when every SDDC is deployed, already present or
 * skipped, and otherwise fails with DeployIncomplete carrying the result, so running it again is the
 * retry. The result counts the SDDCs by status and lists the failed and skipped ones (every SDDC for a
 * deploy to at most 100). A cancel reaches every batch and waits until their agents have cleaned up.
 */
export async function DeployToSDDCs(rawInput: DeployInput): Promise<DeployResult> {
  try {
    const input = validateDeployInput(rawInput);
    // Runs that began before deploys fanned out deploy every SDDC in their own history.
    if (!patched('fleet-fan-out')) return await deployEach(input);
    return await fanOut(input);
  } catch (err) {
    throw asFailure(err);
  }
}

/**
 * DeploySddcBatch: one batch of a fanned-out deploy. For each SDDC in parallel, check its capacity and
 * have its agent download from the nearest verified copy; a content-library SDDC's agent then imports the
 * image into its vCenter's library. Every row is recorded in the catalog; the run fails with
 * DeployIncomplete carrying every row when an SDDC failed. A cancel stops every download and import, and
 * waits until the agents have removed their partial files and half library items.
 */
export async function DeploySddcBatch(rawInput: DeployInput): Promise<DeployResult> {
  try {
    return await deployEach(validateDeployInput(rawInput));
  } catch (err) {
    throw asFailure(err);
  }
}

async function fanOut(input: DeployInput): Promise<DeployResult> {
  const progress: FleetProgress = { sddcsTotal: 0, counts: {}, results: [], batches: [] };
  setHandler(fleetProgressQuery, () => progress);
  upsertSearchAttributes([{ key: IMAGE_KEY, value: input.image }]);
  const asked = input.sddcs === 'all' ? 'every SDDC' : `${input.sddcs.length} SDDCs`;
  setCurrentDetails(detailsText(`Deploy ${input.image} ${input.version}`, `planning the deploy to ${asked}`));
  const fleet = await control.planFleet.executeWithOptions(
    { summary: `plan the deploy of ${input.image}@${input.version} to ${asked}` },
    [input],
  );
  // Each batch lists its own SDDCs; the deploy lists those that fit in one search attribute.
  upsertSearchAttributes([
    { key: VERSION_KEY, value: fleet.version },
    { key: SDDC_KEY, value: searchableNames(fleet.batches.flatMap((b) => b.sddcs)) },
  ]);
  const total = fleet.batches.reduce((n, b) => n + b.sddcs.length, 0);
  const dataCenters = new Set(fleet.batches.map((b) => b.dataCenter));
  const headline = `Deploy ${fleet.image} ${fleet.version} (${formatBytes(fleet.sizeBytes)}) to ${total} SDDCs in ${dataCenters.size} data centers, ${fleet.batches.length} batches`;
  let batchesDone = 0;
  const show = () => {
    const failed = progress.results.filter((r) => r.status === 'failed').map((r) => r.sddc);
    const verb = batchesDone === fleet.batches.length ? 'deployed' : 'deploying';
    setCurrentDetails(
      detailsText(
        headline,
        outcomeLine(verb, progress.counts, total, failed),
        `batches: ${batchesDone} of ${fleet.batches.length} done; each batch's run shows its SDDCs`,
      ),
    );
  };
  show();
  progress.sddcsTotal = total;
  const { workflowId } = workflowInfo();
  progress.batches = fleet.batches.map((b, i) => ({
    workflowId: `${workflowId}:${i + 1}-${b.dataCenter}`,
    dataCenter: b.dataCenter,
    sddcs: b.sddcs.length,
    done: false,
  }));
  const keepEveryRow = total <= BATCH_SIZE;
  const kept: DeployResultRow[][] = fleet.batches.map(() => []);
  await runPool(
    fleet.batches.map((batch, i) => ({ batch, i })),
    BATCHES_AT_ONCE,
    async ({ batch, i }) => {
      const rows = await deployBatch(fleet, batch, progress.batches[i].workflowId, input);
      for (const row of rows) progress.counts[row.status] = (progress.counts[row.status] ?? 0) + 1;
      kept[i] = keepEveryRow ? rows : rows.filter((r) => r.status === 'failed' || r.status === 'skipped');
      progress.results = kept.flat();
      progress.batches[i].done = true;
      batchesDone++;
      show();
    },
  );
  if (CancellationScope.current().consideredCancelled) throw new CancelledFailure('deploy cancelled');
  const result: DeployResult = { image: fleet.image, version: fleet.version, results: progress.results, counts: progress.counts };
  const failed = result.results.filter((r) => r.status === 'failed');
  if (failed.length > 0) {
    const named = failed.slice(0, FAILURES_NAMED).map((r) => `${r.sddc} (${r.reason})`);
    if (failed.length > FAILURES_NAMED) named.push(`${failed.length - FAILURES_NAMED} more`);
    throw ApplicationFailure.nonRetryable(
      `${failed.length} of ${total} SDDCs failed: ${named.join('; ')}`,
      'DeployIncomplete',
      result,
    );
  }
  return result;
}

/**
 * Runs one batch as a child workflow and returns its rows. A batch that could not start or plan (an SDDC
 * removed meanwhile) fails each of its SDDCs with that reason; only a cancel is thrown.
 */
async function deployBatch(
  fleet: FleetPlan,
  batch: SddcBatch,
  workflowId: string,
  options: Pick<DeployInput, 'instantiate' | 'force'>,
): Promise<DeployResultRow[]> {
  const { instantiate, force } = options;
  try {
    const out = await executeChild(DeploySddcBatch, {
      args: [
        {
          image: fleet.image,
          version: fleet.version,
          sddcs: batch.sddcs,
          ...(instantiate ? { instantiate } : {}),
          ...(force ? { force } : {}),
        },
      ],
      workflowId,
      cancellationType: ChildWorkflowCancellationType.WAIT_CANCELLATION_COMPLETED,
      staticSummary: `Deploy ${fleet.image} ${fleet.version} to ${batch.sddcs.length} SDDCs in ${batch.dataCenter}`,
    });
    return out.results;
  } catch (err) {
    if (isCancellation(err)) throw err;
    const cause = err instanceof ChildWorkflowFailure ? err.cause : err;
    if (cause instanceof ApplicationFailure && cause.type === 'DeployIncomplete') {
      const results = (cause.details?.[0] as Partial<DeployResult> | undefined)?.results;
      if (Array.isArray(results)) return results;
    }
    const reason = failureReason(cause);
    return batch.sddcs.map((sddc) => ({ sddc, dataCenter: batch.dataCenter, status: 'failed' as const, source: null, reason }));
  }
}

/** Deploys to every SDDC the input names in this run's own history. */
async function deployEach(input: DeployInput): Promise<DeployResult> {
  const progress: DeployProgress = {};
  setHandler(deployProgressQuery, () => progress);
  upsertSearchAttributes([{ key: IMAGE_KEY, value: input.image }]);
  const asked = input.sddcs === 'all' ? 'every SDDC' : input.sddcs.join(', ');
  setCurrentDetails(detailsText(`Deploy ${input.image} ${input.version}`, `planning the deploy to ${asked}`));
  const plan = await control.planDeployment.executeWithOptions(
    { summary: `plan the deploy of ${input.image}@${input.version} to ${asked}` },
    [input],
  );
  const names = plan.targets.map((t) => t.sddc.name);
  upsertSearchAttributes([
    { key: VERSION_KEY, value: plan.version },
    { key: SDDC_KEY, value: searchableNames(names) },
  ]);
  const board = new Board(
    `Deploy ${plan.image} ${plan.version} (${formatBytes(plan.sizeBytes)}) to ${names.join(', ')}`,
    progress,
  );
  for (const t of plan.targets) {
    progress[t.sddc.name] = { sddc: t.sddc.name, phase: 'pending', source: null, bytesDone: 0, bytesTotal: plan.sizeBytes };
  }
  board.show();
  const results = await Promise.all(plan.targets.map((t) => deployTo(plan, t, board, input.instantiate === true)));
  if (CancellationScope.current().consideredCancelled) throw new CancelledFailure('deploy cancelled');
  const result = { image: plan.image, version: plan.version, results };
  const failed = results.filter((r) => r.status === 'failed');
  if (failed.length > 0) {
    throw ApplicationFailure.nonRetryable(
      `${failed.length} of ${results.length} SDDCs failed: ${failed.map((r) => `${r.sddc} (${r.reason})`).join('; ')}`,
      'DeployIncomplete',
      result,
    );
  }
  return result;
}

async function deployTo(
  plan: DeploymentPlan,
  target: DeploymentTarget,
  board: Board,
  instantiate: boolean,
): Promise<DeployResultRow> {
  const { sddc } = target;
  const p = board.progress[sddc.name];
  const base = { sddc: sddc.name, dataCenter: sddc.dataCenter };
  let row: DeployResultRow;
  if (target.shortfall) {
    row = { ...base, status: 'skipped', source: null, reason: `does not fit: ${target.shortfall}` };
  } else {
    try {
      row = { ...base, ...(await deliver(plan, target, board, instantiate)) };
    } catch (err) {
      const cause = err instanceof ActivityFailure ? err.cause : err;
      if (cause instanceof ApplicationFailure) {
        const details: unknown = cause.details?.[0];
        const failures = Array.isArray(details) ? (details as SourceFailure[]) : [];
        await CancellationScope.nonCancellable(() => markFailures(plan, failures, sddc.name));
      }
      const reason = isCancellation(err) ? CANCELLED_REASON : failureReason(cause);
      row = { ...base, status: 'failed', source: null, reason };
    }
  }
  await CancellationScope.nonCancellable(() =>
    control.recordDeployment.executeWithOptions(
      { summary: `record ${plan.image}@${plan.version} on ${sddc.name}: ${row.status}` },
      [{ image: plan.image, version: plan.version, row }],
    ),
  );
  p.status = row.status;
  p.source = row.source;
  p.reason = row.reason;
  board.phase(p, 'done');
  return row;
}

type Delivered = Omit<DeployResultRow, 'sddc' | 'dataCenter'>;

/** Has the SDDC's agent deliver the image where the SDDC keeps images; an SDDC whose agent does not poll fails at once. */
async function deliver(plan: DeploymentPlan, target: DeploymentTarget, board: Board, instantiate: boolean): Promise<Delivered> {
  const { sddc } = target;
  board.phase(board.progress[sddc.name], 'checking');
  const polling = await control.agentsPolling.executeWithOptions(
    { summary: `is the agent of ${sddc.name} polling ${sddc.taskQueue}?` },
    [{ taskQueue: sddc.taskQueue, image: plan.image, version: plan.version }],
  );
  if (polling === 0) {
    return {
      status: 'failed',
      source: null,
      reason: `NoAgent: no agent has polled task queue ${sddc.taskQueue} in the last five minutes; start it with \`npm run agent -- ${sddc.name}\``,
    };
  }
  // Runs that began before content libraries existed keep deploying into the agent's directory.
  const library = libraryOf(sddc.target);
  if (library && patched('content-library-import')) {
    return toLibrary(plan, target, library, board, instantiate || library.instantiate === true);
  }
  return download(plan, target, board);
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

/**
 * A content-library SDDC: an item already holding the image needs no download; otherwise the agent
 * downloads and verifies the image, then imports it as item `<image>-<version>`. With `instantiate`, a VM
 * made from the item must have the CPUs and memory the catalog gives, and is removed again.
 */
async function toLibrary(
  plan: DeploymentPlan,
  target: DeploymentTarget,
  library: ContentLibraryTarget,
  board: Board,
  instantiate: boolean,
): Promise<Delivered> {
  const { sddc } = target;
  const p = board.progress[sddc.name];
  const agent = onAgent<ContentLibraryActivities>(sddc.taskQueue, {
    startToCloseTimeout: '12 hours',
    heartbeatTimeout: '30 seconds',
  });
  const lookup = onAgent<ContentLibraryActivities>(sddc.taskQueue, { startToCloseTimeout: '5 minutes' });
  const item = libraryItemName(plan.image, plan.version);
  const task: LibraryTaskInput = {
    sddc: sddc.name,
    image: plan.image,
    version: plan.version,
    format: plan.format,
    sha256: plan.sha256,
    sizeBytes: plan.sizeBytes,
    target: library,
  };
  let row: Delivered;
  const found = await lookup.findLibraryItem.executeWithOptions(
    { summary: `look for ${item} in library ${library.library} of ${sddc.name}` },
    [task],
  );
  if (found.state === 'present') {
    row = { status: 'already-present', source: null, target: found.target };
  } else {
    const downloaded = await download(plan, target, board);
    board.phase(p, 'importing');
    const imported = await agent.importToLibrary.executeWithOptions(
      { summary: `import ${item} into library ${library.library} of ${sddc.name}` },
      [task],
    );
    const status = downloaded.status === 'deployed' || imported.status === 'deployed' ? 'deployed' : 'already-present';
    row = {
      status,
      source: downloaded.source,
      path: imported.path,
      bytes: downloaded.bytes,
      bytesFetched: downloaded.bytesFetched,
      bytesReusedLocally: downloaded.bytesReusedLocally,
      target: imported.target,
    };
  }
  if (instantiate && row.target && findFormat(plan.format)?.canInstantiate === true && plan.resources) {
    board.phase(p, 'instantiating');
    row.instantiated = await agent.instantiateFromLibrary.executeWithOptions(
      { summary: `instantiate ${item} on ${sddc.name} and remove it` },
      [{ ...task, placement: row.target, expected: { cpus: plan.resources.cpus, memoryMiB: plan.resources.memoryMiB } }],
    );
  }
  return row;
}

/** Has the SDDC's agent download and verify the image into its datastore. */
async function download(plan: DeploymentPlan, target: DeploymentTarget, board: Board): Promise<Delivered> {
  const { sddc } = target;
  const p = board.progress[sddc.name];
  const agent = onAgent<AgentActivities>(sddc.taskQueue, { startToCloseTimeout: '12 hours', heartbeatTimeout: '20 seconds' });
  p.source = target.sources[0]?.location ?? null;
  board.phase(p, 'downloading');
  const download = {
    sddc: sddc.name,
    image: plan.image,
    version: plan.version,
    format: plan.format,
    sha256: plan.sha256,
    sizeBytes: plan.sizeBytes,
    blob: plan.blob,
    sources: target.sources,
  };
  let out;
  try {
    const from = target.sources.map((s) => s.location).join(', then ');
    out = await agent.downloadImage.executeWithOptions(
      { summary: `download ${plan.image}@${plan.version} to ${sddc.name} from ${from || 'no source'}` },
      [download],
    );
  } catch (err) {
    // A cancel between attempts reaches no running download: have the agent remove what an earlier one left.
    if (isCancellation(err) && patched('discard-on-cancel')) {
      await CancellationScope.nonCancellable(() => discard(sddc.taskQueue, download));
    }
    throw err;
  }
  // Recorded even when a cancel arrives now: the download itself is done.
  await CancellationScope.nonCancellable(() => markFailures(plan, out.sourceFailures, sddc.name));
  p.bytesDone = plan.sizeBytes;
  return {
    status: out.status,
    source: out.source,
    path: out.path,
    bytes: out.bytes,
    bytesFetched: out.bytesFetched,
    bytesReusedLocally: out.bytesReusedLocally ?? 0,
  };
}

async function discard(taskQueue: string, download: Parameters<AgentActivities['discardDownload']>[0]): Promise<void> {
  const agent = proxyActivities<AgentActivities>({
    taskQueue,
    scheduleToStartTimeout: '1 minute',
    startToCloseTimeout: '1 minute',
    retry: { maximumAttempts: 2, nonRetryableErrorTypes: NON_RETRYABLE_ERROR_TYPES },
  });
  await agent.discardDownload
    .executeWithOptions({ summary: `remove the partial download of ${download.image}@${download.version} on ${download.sddc}` }, [
      download,
    ])
    .catch(() => undefined);
}

/** A search attribute value holds at most 2 KB: large fleets list the SDDCs that fit, the catalog has them all. */
const SEARCH_ATTRIBUTE_BYTES = 1800;

function searchableNames(names: string[]): string[] {
  const kept: string[] = [];
  let bytes = 2;
  for (const name of names) {
    bytes += name.length + 3;
    if (bytes > SEARCH_ATTRIBUTE_BYTES) break;
    kept.push(name);
  }
  return kept;
}

async function markFailures(plan: DeploymentPlan, failures: SourceFailure[], sddc: string): Promise<void> {
  if (failures.length === 0) return;
  await control.markSourceFailures.executeWithOptions(
    {
      summary: `note that ${failures.map((f) => f.location).join(', ')} could not deliver ${plan.image}@${plan.version} to ${sddc}`,
    },
    [{ image: plan.image, version: plan.version, failures }],
  );
}

function failureReason(err: unknown): string {
  if (err instanceof ApplicationFailure && err.type) return `${err.type}: ${err.message}`;
  if (err instanceof Error) {
    const inner = err.cause instanceof Error && err.message.includes('timed out') ? ` (${err.cause.message})` : '';
    return `${err.message}${inner}`;
  }
  return String(err);
}
