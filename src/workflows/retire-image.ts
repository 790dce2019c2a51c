import { proxyActivities, setCurrentDetails, upsertSearchAttributes } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { ContentLibraryActivities } from '../activities/content-library';
import type { AgentLifecycleActivities, DeployedCopy, RetirePlan, RetireTarget } from '../activities/lifecycle';
import { VmhubError } from '../errors';
import { asFailure } from '../failures';
import { validateRetireInput, type RetireInput, type RetireResult } from '../lifecycle/input';
import { BOOKKEEPING } from './activity-options';
import { onAgent } from './deploy-to-sddcs';
import { IMAGE_KEY, VERSION_KEY } from './search-attributes';

const control = proxyActivities<Activities>(BOOKKEEPING);

/**
 * RetireImage: claim the version (`retiring`: no deploy plans it any more; refused with DeployRunning
 * while one runs), have each SDDC's agent remove its copy (the file in its datastore, and a content
 * library's item), delete the blob from every storage location, and leave the tombstone (`retired`, when,
 * by which run). Every step is safe to repeat, so a failed or interrupted retire is finished by running
 * it again; a retired version's retire ends at once with nothing to do.
 */
export async function RetireImage(rawInput: RetireInput): Promise<RetireResult> {
  try {
    const input = validateRetireInput(rawInput);
    upsertSearchAttributes([
      { key: IMAGE_KEY, value: input.image },
      { key: VERSION_KEY, value: input.version },
    ]);
    const plan = await control.beginRetire(input);
    if (plan.state === 'retired') return { ...input, status: 'already-retired', sddcs: [], blobsRemoved: [] };
    setCurrentDetails(
      `Retire ${input.image} ${input.version} from ${plan.sddcs.length} SDDCs and ${plan.locations.length} storage locations`,
    );
    // SDDCs first: until their copies are gone the blobs stay, so a retire that stops halfway loses nothing it still needs.
    const sddcs = await Promise.all(plan.sddcs.map((t) => removeFromSddc(plan, t)));
    const blobsRemoved: string[] = [];
    await Promise.all(
      plan.locations.map(async (location) => {
        const { removed } = await control.removeBlob({ ...input, location, blob: plan.blob });
        if (removed) blobsRemoved.push(location);
      }),
    );
    await control.finishRetire(input);
    return { ...input, status: 'retired', sddcs, blobsRemoved: blobsRemoved.sort() };
  } catch (err) {
    throw asFailure(err);
  }
}

type Retiring = Extract<RetirePlan, { state: 'retiring' }>;

async function removeFromSddc(plan: Retiring, t: RetireTarget): Promise<RetireResult['sddcs'][number]> {
  if ((await control.agentsPolling({ taskQueue: t.taskQueue })) === 0) {
    throw new VmhubError(
      'NoAgent',
      `no agent has polled task queue ${t.taskQueue} of ${t.sddc} in the last five minutes; start it with \`npm run agent -- ${t.sddc}\` and retire again (or, for an SDDC gone for good, \`vmhub sddc remove ${t.sddc}\`)`,
    );
  }
  const agent = onAgent<AgentLifecycleActivities & ContentLibraryActivities>(t.taskQueue, { startToCloseTimeout: '10 minutes' });
  const copy: DeployedCopy = {
    sddc: t.sddc,
    image: plan.image,
    version: plan.version,
    format: plan.format,
    sha256: plan.sha256,
    sizeBytes: plan.sizeBytes,
  };
  const { removed } = await agent.removeDeployedCopy.executeWithOptions({ summary: `remove the copy on ${t.sddc}` }, [copy]);
  let libraryItem: string | null = null;
  if (t.target?.kind === 'content-library') {
    const out = await agent.removeLibraryItem.executeWithOptions(
      { summary: `remove the item from library ${t.target.library} of ${t.sddc}` },
      [{ ...copy, target: t.target }],
    );
    libraryItem = out.removed?.itemId ?? null;
  }
  await control.recordRemoval({ image: plan.image, version: plan.version, sddc: t.sddc });
  return { sddc: t.sddc, files: removed, libraryItem };
}
