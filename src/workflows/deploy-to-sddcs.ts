import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  CancelledFailure,
  ChildWorkflowCancellationType,
  ParentClosePolicy,
  defineQuery,
  executeChild,
  isCancellation,
  patched,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { SourceFailure } from '../activities/agent';
import type { DeploymentPlan, DeploymentTarget, FleetPlan } from '../activities/deploy';
import { runPool } from '../shared/concurrency';
import { BATCH_SIZE, type SddcBatch } from '../shared/batches';
import {
  validateDeployInput,
  type DeployInput,
  type DeployProgress,
  type DeployResult,
  type DeployCounts,
  type DeployResultRow,
  type FleetProgress,
} from '../shared/deploy-input';
import { asFailure } from '../shared/failures';
import { libraryOf } from '../shared/sddc-target';
import { formatBytes, plural } from '../shared/units';
import { control } from './activity-options';
import { agentChecker, type AgentChecker } from './agent-queues';
import { download, markFailures, type Delivered } from './agent-download';
import { toLibrary } from './library-deploy';
import { Board } from './deploy-board';
import {
  addCounts,
  boundedResult,
  countRows,
  failureReason,
  incompleteMessage,
  ROWS_KEPT,
  rowsOfFailedDeploy,
  searchableNames,
} from './deploy-rows';
import { detailsText, outcomeLine } from './current-details';
import { noAgentRow, refuseAllOrNothing } from './no-agent';
import { preflightRow } from './preflight';
import { IMAGE_KEY, SDDC_KEY, VERSION_KEY } from './search-attributes';

export const deployProgressQuery = defineQuery<DeployProgress>('progress');
export const fleetProgressQuery = defineQuery<FleetProgress>('progress');

const CANCELLED_REASON = 'cancelled: the agent stopped and removed its partial download or library import';

/** Batches deploying at once: bounds the pending child workflows of one run whatever the fleet. */
const BATCHES_AT_ONCE = 50;

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
  const asked = input.sddcs === 'all' ? 'every SDDC' : plural(input.sddcs.length, 'SDDC');
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
  refuseAllOrNothing(fleet);
  // Runs that began before deploy leases deploy without one.
  if (!patched('deploy-lease')) return deployBatches(input, fleet, progress);
  return withLease(fleet, () => deployBatches(input, fleet, progress));
}

/**
 * Holds the deploy's lease on the version in the catalog while `deploy` runs, so a retire is refused
 * meanwhile; given back however the deploy ends. A release that fails leaves a lease the retire drops
 * once it finds this run closed.
 */
async function withLease<T>(fleet: FleetPlan, deploy: () => Promise<T>): Promise<T> {
  const { workflowId, runId } = workflowInfo();
  const ref = `${fleet.image}@${fleet.version}`;
  try {
    await control.holdDeployLease.executeWithOptions({ summary: `lease ${ref} for this deploy` }, [
      { image: fleet.image, version: fleet.version, run: { workflowId, runId } },
    ]);
    return await deploy();
  } finally {
    await CancellationScope.nonCancellable(() =>
      control.releaseDeployLease
        .executeWithOptions({ summary: `release this deploy's lease on ${ref}` }, [{ workflowId }])
        .catch(() => undefined),
    );
  }
}

/** Runs the batches, BATCHES_AT_ONCE at a time, folding their rows into counts and a bounded list. */
async function deployBatches(input: DeployInput, fleet: FleetPlan, progress: FleetProgress): Promise<DeployResult> {
  const total = fleet.batches.reduce((n, b) => n + b.sddcs.length, 0);
  const dataCenters = new Set(fleet.batches.map((b) => b.dataCenter));
  const headline = `Deploy ${fleet.image} ${fleet.version} (${formatBytes(fleet.sizeBytes)}) to ${plural(total, 'SDDC')} in ${plural(dataCenters.size, 'data center')}, ${plural(fleet.batches.length, 'batch', 'batches')}`;
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
  // Per batch: the rows the result may list (never more than it keeps), and how many there were.
  const kept: DeployResultRow[][] = fleet.batches.map(() => []);
  const listable = fleet.batches.map(() => 0);
  await runPool(
    fleet.batches.map((batch, i) => ({ batch, i })),
    BATCHES_AT_ONCE,
    async ({ batch, i }) => {
      const { rows, counts } = await deployBatch(fleet, batch, progress.batches[i].workflowId, input);
      addCounts(progress.counts, counts);
      const listed = keepEveryRow ? rows : rows.filter((r) => r.status === 'failed' || r.status === 'skipped');
      listable[i] = keepEveryRow ? rows.length : (counts.failed ?? 0) + (counts.skipped ?? 0);
      kept[i] = listed.slice(0, ROWS_KEPT);
      progress.results = kept.flat().slice(0, ROWS_KEPT);
      progress.batches[i].done = true;
      batchesDone++;
      show();
    },
  );
  if (CancellationScope.current().consideredCancelled) throw new CancelledFailure('deploy cancelled');
  const listableCount = listable.reduce((a, b) => a + b, 0);
  const result = boundedResult(fleet, kept.flat(), listableCount, progress.counts);
  const failedCount = progress.counts.failed ?? 0;
  if (failedCount > 0) {
    const failed = result.results.filter((r) => r.status === 'failed');
    throw ApplicationFailure.nonRetryable(incompleteMessage(failed, failedCount, total), 'DeployIncomplete', result);
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
  options: Pick<DeployInput, 'instantiate' | 'force' | 'allOrNothing' | 'channel' | 'gate'>,
): Promise<{ rows: DeployResultRow[]; counts: DeployCounts }> {
  const { instantiate, force, allOrNothing, channel, gate } = options;
  // Terminating or resetting the parent cancels its batches, which then clean up, rather than killing them.
  const closePolicy = patched('batch-request-cancel') ? { parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL } : {};
  const rowsOf = (r: Partial<DeployResult>) => ({ rows: r.results ?? [], counts: r.counts ?? countRows(r.results ?? []) });
  try {
    const out = await executeChild(DeploySddcBatch, {
      args: [
        {
          image: fleet.image,
          version: fleet.version,
          sddcs: batch.sddcs,
          ...(instantiate ? { instantiate } : {}),
          ...(force ? { force } : {}),
          ...(allOrNothing ? { allOrNothing } : {}),
          ...(channel ? { channel } : {}),
          ...(gate ? { gate } : {}),
        },
      ],
      workflowId,
      cancellationType: ChildWorkflowCancellationType.WAIT_CANCELLATION_COMPLETED,
      ...closePolicy,
      staticSummary: `Deploy ${fleet.image} ${fleet.version} to ${plural(batch.sddcs.length, 'SDDC')} in ${batch.dataCenter}`,
    });
    return rowsOf(out);
  } catch (err) {
    if (isCancellation(err)) throw err;
    return rowsOf(rowsOfFailedDeploy(err, batch.sddcs, batch.dataCenter));
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
  const checkAgentOf = agentChecker(control, { ...plan, taskQueues: plan.targets.map((t) => t.sddc.taskQueue) });
  const results = await Promise.all(plan.targets.map((t) => deployTo(plan, t, board, input, checkAgentOf)));
  if (CancellationScope.current().consideredCancelled) throw new CancelledFailure('deploy cancelled');
  // A batch has at most BATCH_SIZE rows; one past ROWS_KEPT also says its counts, which the rows no longer give.
  const result = boundedResult(plan, results, results.length, results.length > ROWS_KEPT ? countRows(results) : undefined);
  const failed = results.filter((r) => r.status === 'failed');
  if (failed.length > 0) {
    throw ApplicationFailure.nonRetryable(incompleteMessage(failed, failed.length, results.length), 'DeployIncomplete', result);
  }
  return result;
}

async function deployTo(
  plan: DeploymentPlan,
  target: DeploymentTarget,
  board: Board,
  input: DeployInput,
  checkAgentOf: AgentChecker,
): Promise<DeployResultRow> {
  const { sddc } = target;
  const p = board.progress[sddc.name];
  const base = { sddc: sddc.name, dataCenter: sddc.dataCenter };
  let row: DeployResultRow;
  if (target.shortfall) {
    row = { ...base, status: 'skipped', source: null, reason: `does not fit: ${target.shortfall}` };
  } else if (target.refused) {
    // The SDDC's OVF policy refuses the version: final, so no agent is asked.
    row = { ...base, status: 'failed', source: null, reason: target.refused };
  } else {
    try {
      row = { ...base, ...(await deliver(plan, target, board, input, checkAgentOf)) };
    } catch (err) {
      const cause = err instanceof ActivityFailure ? err.cause : err;
      if (cause instanceof ApplicationFailure) {
        const details: unknown = cause.details?.[0];
        const failures = Array.isArray(details) ? (details as SourceFailure[]) : [];
        await CancellationScope.nonCancellable(() => markFailures(plan, failures, sddc.name));
      }
      // A cancelled SDDC's row says what its cleanup did, when the workflow ran one, else what the agent does itself.
      const reason =
        isCancellation(err) || CancellationScope.current().consideredCancelled
          ? (p.reason ?? CANCELLED_REASON)
          : failureReason(cause);
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

/** Has the SDDC's agent deliver the image where the SDDC keeps images; an SDDC whose agent does not poll ends at once (noAgentRow). */
async function deliver(
  plan: DeploymentPlan,
  target: DeploymentTarget,
  board: Board,
  input: DeployInput,
  checkAgentOf: AgentChecker,
): Promise<Delivered> {
  const { sddc } = target;
  board.phase(board.progress[sddc.name], 'checking');
  const agent = await checkAgentOf(sddc);
  if (!agent.alive) return noAgentRow(sddc, input.allOrNothing === true);
  // Runs that began before content libraries existed keep deploying into the agent's directory.
  const library = libraryOf(sddc.target);
  if (library && patched('content-library-import')) {
    const refused = await preflightRow(plan, sddc.name, library, agent.quickQueue);
    if (refused) return refused;
    // A rollout's gate makes its own VM from the item, and checks more than the instantiate check does.
    const instantiate = (input.instantiate === true || library.instantiate === true) && input.gate?.instantiate !== true;
    return toLibrary(plan, target, library, board, { ...input, instantiate }, agent.quickQueue);
  }
  return download(plan, target, board, agent.quickQueue);
}
