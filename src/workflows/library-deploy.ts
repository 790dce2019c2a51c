import { CancellationScope, isCancellation, patched } from '@temporalio/workflow';
import type { ContentLibraryActivities, LibraryTaskInput } from '../activities/content-library';
import type { DeploymentPlan, DeploymentTarget } from '../activities/deploy';
import type { LibraryStreamActivities } from '../activities/library-stream';
import type { DeployInput, SddcProgress } from '../shared/deploy-input';
import { findFormat } from '../shared/image-format';
import { libraryItemName } from '../shared/target-kinds/content-library';
import type { ContentLibraryTarget } from '../shared/target-kinds/kind';
import { download, downloadedRow, downloadRequest, type Delivered } from './agent-download';
import { discardOnAgent, onAgent, removeHalfItemOnAgent } from './agent-queues';
import type { Board } from './deploy-board';
import { gateAndChannel } from './wave-gate';

/** Runs past this patch have the agent download and import in one activity, the bytes streamed into the item as they land. */
export const LIBRARY_STREAM_PATCH = 'library-stream-import';

/**
 * A content-library SDDC: an item already holding the image needs no download; otherwise the agent
 * downloads the image and sends it into item `<image>-<version>` at once, completing the item only once
 * the download verified (before LIBRARY_STREAM_PATCH: downloads and verifies it, then imports it). With `instantiate`, a VM
 * made from the item must have the CPUs and memory the catalog gives, and is removed again.
 */
export async function toLibrary(
  plan: DeploymentPlan,
  target: DeploymentTarget,
  library: ContentLibraryTarget,
  board: Board,
  input: Pick<DeployInput, 'instantiate' | 'gate' | 'channel'>,
  quickQueue: string,
): Promise<Delivered> {
  const { sddc } = target;
  const p = board.progress[sddc.name];
  const agent = onAgent<ContentLibraryActivities>(sddc.taskQueue, {
    startToCloseTimeout: '12 hours',
    heartbeatTimeout: '30 seconds',
  });
  const lookup = onAgent<ContentLibraryActivities>(quickQueue, { startToCloseTimeout: '5 minutes' });
  const item = libraryItemName(plan.image, plan.version);
  const task: LibraryTaskInput = {
    sddc: sddc.name,
    image: plan.image,
    version: plan.version,
    format: plan.format,
    sha256: plan.sha256,
    sizeBytes: plan.sizeBytes,
    target: library,
    ...(plan.envelope ? { envelope: plan.envelope } : {}),
  };
  let row: Delivered;
  const found = await lookup.findLibraryItem.executeWithOptions(
    { summary: `look for ${item} in library ${library.library} of ${sddc.name}` },
    [task],
  );
  if (found.state === 'present') {
    row = { status: 'already-present', source: null, target: found.target };
  } else if (patched(LIBRARY_STREAM_PATCH)) {
    board.phase(p, 'importing');
    row = await streamToLibrary(plan, target, task, p, quickQueue);
  } else {
    const downloaded = await download(plan, target, board, quickQueue);
    board.phase(p, 'importing');
    let imported;
    try {
      imported = await agent.importToLibrary.executeWithOptions(
        { summary: `import ${item} into library ${library.library} of ${sddc.name}` },
        [task],
      );
    } catch (err) {
      // An import whose agent is dead or hung ends as a timeout, not a cancel: its half item is removed all the same.
      const cancelled = isCancellation(err) || CancellationScope.current().consideredCancelled;
      if (cancelled && patched('library-cancel-cleanup')) {
        p.reason = await CancellationScope.nonCancellable(() => removeHalfItemOnAgent(quickQueue, task));
      }
      throw err;
    }
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
  if (input.gate || input.channel) {
    board.phase(p, 'gating');
    row = await gateAndChannel(plan, target, task, row, input);
  }
  if (input.instantiate && row.target && findFormat(plan.format)?.canInstantiate === true && plan.resources) {
    board.phase(p, 'instantiating');
    row.instantiated = await agent.instantiateFromLibrary.executeWithOptions(
      { summary: `instantiate ${item} on ${sddc.name} and remove it` },
      [{ ...task, placement: row.target, expected: { cpus: plan.resources.cpus, memoryMiB: plan.resources.memoryMiB } }],
    );
  }
  return row;
}

/**
 * Has the SDDC's agent download the image and stream it into the library item in one activity. A cancel
 * has the agent remove the half item and the partial download, should the activity not have done so itself.
 */
async function streamToLibrary(
  plan: DeploymentPlan,
  target: DeploymentTarget,
  task: LibraryTaskInput,
  p: SddcProgress,
  quickQueue: string,
): Promise<Delivered> {
  const { sddc } = target;
  p.source = target.sources[0]?.location ?? null;
  const agent = onAgent<LibraryStreamActivities>(sddc.taskQueue, {
    startToCloseTimeout: '12 hours',
    heartbeatTimeout: '30 seconds',
  });
  const input = { ...task, blob: plan.blob, sources: target.sources };
  const item = libraryItemName(plan.image, plan.version);
  let out;
  try {
    const from = target.sources.map((s) => s.location).join(', then ');
    out = await agent.streamToLibrary.executeWithOptions(
      {
        summary: `download ${plan.image}@${plan.version} from ${from || 'no source'} into ${item} of library ${task.target.library} on ${sddc.name}`,
      },
      [input],
    );
  } catch (err) {
    if (isCancellation(err) || CancellationScope.current().consideredCancelled) {
      p.reason = await CancellationScope.nonCancellable(async () => {
        await discardOnAgent(quickQueue, downloadRequest(plan, target));
        return removeHalfItemOnAgent(quickQueue, task);
      });
    }
    throw err;
  }
  return { ...(await downloadedRow(plan, sddc.name, p, out)), target: out.target };
}
