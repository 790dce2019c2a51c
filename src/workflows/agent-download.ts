import { CancellationScope, isCancellation, patched } from '@temporalio/workflow';
import type { AgentActivities, DownloadOutput, SourceFailure } from '../activities/agent';
import type { DeploymentPlan, DeploymentTarget } from '../activities/deploy';
import type { DeployResultRow, SddcProgress } from '../shared/deploy-input';
import { control } from './activity-options';
import { discardOnAgent, onAgent } from './agent-queues';
import type { Board } from './deploy-board';

/** What an SDDC's agent delivered: its row without the SDDC's names. */
export type Delivered = Omit<DeployResultRow, 'sddc' | 'dataCenter'>;

/** Has the SDDC's agent download and verify the image into its datastore; a discard goes to `quickQueue`. */
export async function download(
  plan: DeploymentPlan,
  target: DeploymentTarget,
  board: Board,
  quickQueue: string,
): Promise<Delivered> {
  const { sddc } = target;
  const p = board.progress[sddc.name];
  const agent = onAgent<AgentActivities>(sddc.taskQueue, { startToCloseTimeout: '12 hours', heartbeatTimeout: '20 seconds' });
  p.source = target.sources[0]?.location ?? null;
  board.phase(p, 'downloading');
  const download = downloadRequest(plan, target);
  let out;
  try {
    const from = target.sources.map((s) => s.location).join(', then ');
    out = await agent.downloadImage.executeWithOptions(
      { summary: `download ${plan.image}@${plan.version} to ${sddc.name} from ${from || 'no source'}` },
      [download],
    );
  } catch (err) {
    // A cancel between attempts reaches no running download, and one whose agent is dead or hung ends as a
    // timeout: once a cancel was asked for, whatever the error, have the agent remove what a download left.
    if (cancelledBy(err, 'deploy-cancel-by-scope') && patched('discard-on-cancel')) {
      p.reason = await CancellationScope.nonCancellable(() => discardOnAgent(quickQueue, download));
    }
    throw err;
  }
  return downloadedRow(plan, sddc.name, p, out);
}

/** What an SDDC's agent is asked to fetch, or to discard what it fetched of: the plan's image from the target's sources. */
export function downloadRequest(plan: DeploymentPlan, target: DeploymentTarget) {
  const { image, version, format, sha256, sizeBytes, blob } = plan;
  return { sddc: target.sddc.name, image, version, format, sha256, sizeBytes, blob, sources: target.sources };
}

/** A finished download's row, its sources' failures recorded (even when a cancel arrives now: the download itself is done). */
export async function downloadedRow(
  plan: DeploymentPlan,
  sddc: string,
  p: SddcProgress,
  out: Omit<DownloadOutput, 'path'> & { path?: string },
): Promise<Delivered> {
  await CancellationScope.nonCancellable(() => markFailures(plan, out.sourceFailures, sddc));
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

/**
 * Whether `err` ended the step because of a cancel: the error says so, or (past `patch`) the run was asked
 * to cancel, as when the cancelled activity's agent never answered and it timed out instead.
 */
export function cancelledBy(err: unknown, patch: string): boolean {
  return isCancellation(err) || (CancellationScope.current().consideredCancelled && patched(patch));
}

export async function markFailures(plan: DeploymentPlan, failures: SourceFailure[], sddc: string): Promise<void> {
  if (failures.length === 0) return;
  await control.markSourceFailures.executeWithOptions(
    {
      summary: `note that ${failures.map((f) => f.location).join(', ')} could not deliver ${plan.image}@${plan.version} to ${sddc}`,
    },
    [{ image: plan.image, version: plan.version, failures }],
  );
}
