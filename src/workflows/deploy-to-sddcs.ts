import {
  ActivityFailure,
  ApplicationFailure,
  defineQuery,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { AgentActivities, SourceFailure } from '../activities/agent';
import type { DeploymentPlan, DeploymentTarget } from '../activities/deploy';
import {
  validateDeployInput,
  type DeployInput,
  type DeployProgress,
  type DeployResult,
  type DeployResultRow,
} from '../deploy/input';
import { asFailure } from '../failures';
import { formatBytes } from '../units';
import { IMAGE_KEY, SDDC_KEY, VERSION_KEY } from './search-attributes';

export const deployProgressQuery = defineQuery<DeployProgress>('progress');

const control = proxyActivities<Activities>({
  startToCloseTimeout: '2 minutes',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute' },
});

/**
 * DeployToSDDCs (SPEC §4): resolve the version and the SDDCs, then for each SDDC in parallel check its
 * capacity, and have its agent download from the nearest verified copy. One SDDC failing never fails
 * the others; the workflow itself fails only for invalid input.
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
      { key: SDDC_KEY, value: names },
    ]);
    setCurrentDetails(`Deploy ${plan.image} ${plan.version} (${formatBytes(plan.sizeBytes)}) to ${names.join(', ')}`);
    for (const t of plan.targets) {
      progress[t.sddc.name] = { sddc: t.sddc.name, phase: 'pending', source: null, bytesDone: 0, bytesTotal: plan.sizeBytes };
    }
    const results = await Promise.all(plan.targets.map((t) => deployTo(plan, t, progress)));
    return { image: plan.image, version: plan.version, results };
  } catch (err) {
    throw asFailure(err);
  }
}

async function deployTo(plan: DeploymentPlan, target: DeploymentTarget, progress: DeployProgress): Promise<DeployResultRow> {
  const { sddc } = target;
  const p = progress[sddc.name];
  const base = { sddc: sddc.name, dataCenter: sddc.dataCenter };
  let row: DeployResultRow;
  if (target.shortfall) {
    row = { ...base, status: 'skipped', source: null, reason: `does not fit: ${target.shortfall}` };
  } else {
    const agent = proxyActivities<AgentActivities>({
      taskQueue: sddc.taskQueue,
      // An SDDC whose agent is not polling fails visibly instead of waiting forever.
      scheduleToStartTimeout: '45 seconds',
      startToCloseTimeout: '12 hours',
      heartbeatTimeout: '20 seconds',
      retry: { initialInterval: '2 seconds', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 5 },
    });
    p.phase = 'downloading';
    p.source = target.sources[0]?.location ?? null;
    try {
      const out = await agent.downloadImage.executeWithOptions({ summary: `download to ${sddc.name}` }, [
        {
          sddc: sddc.name,
          image: plan.image,
          version: plan.version,
          format: plan.format,
          sha256: plan.sha256,
          sizeBytes: plan.sizeBytes,
          blob: plan.blob,
          datastore: sddc.datastore,
          sources: target.sources,
        },
      ]);
      await markFailures(plan, out.sourceFailures);
      row = { ...base, status: out.status, source: out.source, path: out.path, bytes: out.bytes };
      p.bytesDone = plan.sizeBytes;
    } catch (err) {
      const cause = err instanceof ActivityFailure ? err.cause : err;
      if (cause instanceof ApplicationFailure)
        await markFailures(plan, (cause.details?.[0] as SourceFailure[] | undefined) ?? []);
      row = { ...base, status: 'failed', source: null, reason: failureReason(cause) };
    }
  }
  await control.recordDeployment({ image: plan.image, version: plan.version, row });
  p.phase = 'done';
  p.status = row.status;
  p.source = row.source;
  return row;
}

async function markFailures(plan: DeploymentPlan, failures: SourceFailure[]): Promise<void> {
  if (failures.length > 0) await control.markSourceFailures({ image: plan.image, version: plan.version, failures });
}

function failureReason(err: unknown): string {
  if (err instanceof Error) {
    const inner = err.cause instanceof Error && err.message.includes('timed out') ? ` (${err.cause.message})` : '';
    return `${err.message}${inner}`;
  }
  return String(err);
}
