// What a deploy does with an SDDC whose agent does not poll: it skips it and deploys the others, or, all or nothing, deploys nowhere.
import { ApplicationFailure, patched } from '@temporalio/workflow';
import type { FleetPlan } from '../activities/deploy';
import type { DeployResultRow } from '../shared/deploy-input';
import { nameFirstFew } from '../shared/failures';
import { boundedResult } from './deploy-rows';

/** Runs past this patch skip an SDDC without an agent; earlier runs failed it (NoAgent). */
export const NO_AGENT_SKIPS_PATCH = 'no-agent-skips';
/** Runs past this patch refuse an all-or-nothing deploy, before any batch, when an SDDC has no agent. */
export const ALL_OR_NOTHING_PATCH = 'deploy-all-or-nothing';

type NoAgentRow = Pick<DeployResultRow, 'status' | 'source' | 'reason'>;

/**
 * The row of an SDDC whose agent polled neither of its queues in the last five minutes: `skipped`, so the
 * deploy still completes for the others. In an all-or-nothing deploy (its agent left after the plan
 * found it) it fails, since skipping it would deploy only part of what was asked.
 */
export function noAgentRow(sddc: { name: string; taskQueue: string }, allOrNothing: boolean): NoAgentRow {
  const start = `start it with \`npm run agent -- ${sddc.name}\``;
  if (!allOrNothing && patched(NO_AGENT_SKIPS_PATCH)) {
    return {
      status: 'skipped',
      source: null,
      reason: `no agent: nothing polled task queue ${sddc.taskQueue} in the last five minutes; ${start} and deploy again`,
    };
  }
  return {
    status: 'failed',
    source: null,
    reason: `NoAgent: no agent has polled task queue ${sddc.taskQueue} in the last five minutes; ${start}`,
  };
}

/**
 * An all-or-nothing deploy whose plan found SDDCs without an agent ends NoAgent here, before any batch
 * starts, so nothing is deployed and no lease is taken. Its details are a deploy result, as
 * DeployIncomplete's are: each SDDC without an agent `failed`, the others `skipped`, so that a publish
 * which deploys reports them.
 */
export function refuseAllOrNothing(fleet: FleetPlan): void {
  const { noAgent } = fleet;
  if (!noAgent || noAgent.count === 0 || !patched(ALL_OR_NOTHING_PATCH)) return;
  const silent = new Map(noAgent.sddcs.map((s) => [s.name, s]));
  const all = fleet.batches.flatMap((b) => b.sddcs.map((sddc) => ({ sddc, dataCenter: b.dataCenter })));
  const them = noAgent.count === 1 ? 'it' : 'them';
  const failed: DeployResultRow[] = [];
  const skipped: DeployResultRow[] = [];
  for (const { sddc, dataCenter } of all) {
    const s = silent.get(sddc);
    if (s) failed.push({ sddc, dataCenter, ...noAgentRow(s, true) });
    else
      skipped.push({
        sddc,
        dataCenter,
        status: 'skipped',
        source: null,
        reason: 'all or nothing: not deployed, since an SDDC has no agent',
      });
  }
  // Past the SDDCs the plan names, those without an agent are counted as failed, not listed.
  const counts = { failed: noAgent.count, ...(all.length > noAgent.count ? { skipped: all.length - noAgent.count } : {}) };
  const result = boundedResult(fleet, [...failed, ...skipped], all.length, counts);
  const named = nameFirstFew(noAgent.sddcs, (s) => `${s.name} (task queue ${s.taskQueue})`, noAgent.count);
  throw ApplicationFailure.nonRetryable(
    `all or nothing: no agent has polled in the last five minutes for ${named}, so nothing was deployed; start ${them} (${noAgent.count === 1 ? '' : 'e.g. '}\`npm run agent -- ${noAgent.sddcs[0].name}\`) and deploy again, or deploy without all-or-nothing to skip ${them}`,
    'NoAgent',
    result,
  );
}
