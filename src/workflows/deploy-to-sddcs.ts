import {
  ActivityCancellationType,
  ActivityFailure,
  ApplicationFailure,
  type ActivityOptions,
  CancellationScope,
  CancelledFailure,
  defineQuery,
  isCancellation,
  patched,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { AgentActivities, SourceFailure } from '../activities/agent';
import type { ContentLibraryActivities, LibraryTaskInput } from '../activities/content-library';
import type { DeploymentPlan, DeploymentTarget } from '../activities/deploy';
import {
  validateDeployInput,
  type DeployInput,
  type DeployProgress,
  type DeployResult,
  type DeployResultRow,
} from '../deploy/input';
import { NON_RETRYABLE_ERROR_TYPES } from '../errors';
import { asFailure } from '../failures';
import { libraryItemName, type ContentLibraryTarget } from '../sddc/target';
import { formatBytes } from '../units';
import { BOOKKEEPING } from './activity-options';
import { IMAGE_KEY, SDDC_KEY, VERSION_KEY } from './search-attributes';

export const deployProgressQuery = defineQuery<DeployProgress>('progress');

const control = proxyActivities<Activities>(BOOKKEEPING);

const CANCELLED_REASON = 'cancelled: the agent stopped and removed its partial download or library import';

/**
 * DeployToSDDCs: resolve the version and the SDDCs, then for each SDDC in parallel check its capacity,
 * and have its agent download from the nearest verified copy; a content-library SDDC's agent then
 * imports the image into its vCenter's library. One SDDC failing never stops the others;
 * the run completes when every SDDC is deployed, already present or skipped, and otherwise fails with
 * DeployIncomplete carrying every row, so running it again is the retry. A cancel stops every download
 * and import, and waits until the agents have removed their partial files and half library items.
 */
export async function DeployToSDDCs(rawInput: DeployInput): Promise<DeployResult> {
  const progress: DeployProgress = {};
  setHandler(deployProgressQuery, () => progress);
  try {
    const input = validateDeployInput(rawInput);
    upsertSearchAttributes([{ key: IMAGE_KEY, value: input.image }]);
    const plan = await control.planDeployment(input);
    const names = plan.targets.map((t) => t.sddc.name);
    upsertSearchAttributes([
      { key: VERSION_KEY, value: plan.version },
      { key: SDDC_KEY, value: searchableNames(names) },
    ]);
    setCurrentDetails(`Deploy ${plan.image} ${plan.version} (${formatBytes(plan.sizeBytes)}) to ${names.join(', ')}`);
    for (const t of plan.targets) {
      progress[t.sddc.name] = { sddc: t.sddc.name, phase: 'pending', source: null, bytesDone: 0, bytesTotal: plan.sizeBytes };
    }
    const results = await Promise.all(plan.targets.map((t) => deployTo(plan, t, progress, input.instantiate === true)));
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
  } catch (err) {
    throw asFailure(err);
  }
}

async function deployTo(
  plan: DeploymentPlan,
  target: DeploymentTarget,
  progress: DeployProgress,
  instantiate: boolean,
): Promise<DeployResultRow> {
  const { sddc } = target;
  const p = progress[sddc.name];
  const base = { sddc: sddc.name, dataCenter: sddc.dataCenter };
  let row: DeployResultRow;
  if (target.shortfall) {
    row = { ...base, status: 'skipped', source: null, reason: `does not fit: ${target.shortfall}` };
  } else {
    try {
      row = { ...base, ...(await deliver(plan, target, p, instantiate)) };
    } catch (err) {
      const cause = err instanceof ActivityFailure ? err.cause : err;
      if (cause instanceof ApplicationFailure) {
        const details: unknown = cause.details?.[0];
        const failures = Array.isArray(details) ? (details as SourceFailure[]) : [];
        await CancellationScope.nonCancellable(() => markFailures(plan, failures));
      }
      const reason = isCancellation(err) ? CANCELLED_REASON : failureReason(cause);
      row = { ...base, status: 'failed', source: null, reason };
    }
  }
  await CancellationScope.nonCancellable(() => control.recordDeployment({ image: plan.image, version: plan.version, row }));
  p.phase = 'done';
  p.status = row.status;
  p.source = row.source;
  p.reason = row.reason;
  return row;
}

type Delivered = Omit<DeployResultRow, 'sddc' | 'dataCenter'>;

/** Has the SDDC's agent deliver the image where the SDDC keeps images; an SDDC whose agent does not poll fails at once. */
async function deliver(
  plan: DeploymentPlan,
  target: DeploymentTarget,
  p: DeployProgress[string],
  instantiate: boolean,
): Promise<Delivered> {
  const { sddc } = target;
  p.phase = 'checking';
  if ((await control.agentsPolling({ taskQueue: sddc.taskQueue })) === 0) {
    return {
      status: 'failed',
      source: null,
      reason: `NoAgent: no agent has polled task queue ${sddc.taskQueue} in the last five minutes; start it with \`npm run agent -- ${sddc.name}\``,
    };
  }
  // Runs that began before content libraries existed keep deploying into the agent's directory.
  if (sddc.target?.kind === 'content-library' && patched('content-library-import')) {
    return toLibrary(plan, target, sddc.target, p, instantiate || sddc.target.instantiate === true);
  }
  return download(plan, target, p);
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
  p: DeployProgress[string],
  instantiate: boolean,
): Promise<Delivered> {
  const { sddc } = target;
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
    const downloaded = await download(plan, target, p);
    p.phase = 'importing';
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
  // An ISO item is media, not a VM template: there is nothing to instantiate.
  if (instantiate && row.target && plan.format !== 'iso' && plan.resources) {
    p.phase = 'instantiating';
    row.instantiated = await agent.instantiateFromLibrary.executeWithOptions(
      { summary: `instantiate ${item} on ${sddc.name} and remove it` },
      [{ ...task, placement: row.target, expected: { cpus: plan.resources.cpus, memoryMiB: plan.resources.memoryMiB } }],
    );
  }
  return row;
}

/** Has the SDDC's agent download and verify the image into its datastore. */
async function download(plan: DeploymentPlan, target: DeploymentTarget, p: DeployProgress[string]): Promise<Delivered> {
  const { sddc } = target;
  const agent = onAgent<AgentActivities>(sddc.taskQueue, { startToCloseTimeout: '12 hours', heartbeatTimeout: '20 seconds' });
  p.phase = 'downloading';
  p.source = target.sources[0]?.location ?? null;
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
    out = await agent.downloadImage.executeWithOptions({ summary: `download to ${sddc.name}` }, [download]);
  } catch (err) {
    // A cancel between attempts reaches no running download: have the agent remove what an earlier one left.
    if (isCancellation(err) && patched('discard-on-cancel')) {
      await CancellationScope.nonCancellable(() => discard(sddc.taskQueue, download));
    }
    throw err;
  }
  // Recorded even when a cancel arrives now: the download itself is done.
  await CancellationScope.nonCancellable(() => markFailures(plan, out.sourceFailures));
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
    .executeWithOptions({ summary: `remove the partial download on ${download.sddc}` }, [download])
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

async function markFailures(plan: DeploymentPlan, failures: SourceFailure[]): Promise<void> {
  if (failures.length > 0) await control.markSourceFailures({ image: plan.image, version: plan.version, failures });
}

function failureReason(err: unknown): string {
  if (err instanceof ApplicationFailure && err.type) return `${err.type}: ${err.message}`;
  if (err instanceof Error) {
    const inner = err.cause instanceof Error && err.message.includes('timed out') ? ` (${err.cause.message})` : '';
    return `${err.message}${inner}`;
  }
  return String(err);
}
