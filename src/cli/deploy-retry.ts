import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { DeploymentRecord } from '../catalog/deployment-records';
import type { DeployInput, DeployResult, DeployResultRow } from '../shared/deploy-input';
import { PROVENANCE_FAILURES, VmhubError } from '../shared/errors';
import { rolloutWorkflowId } from '../shared/rollout-input';
import { plural } from '../shared/units';
import type { CliDeps } from './deps';
import { deployOutcome, describeFailure, startInput } from './operations';
import { table } from './output';
import { findRun } from './run-ref';

/** An SDDC of the run retried, or not: how it ended there, and why. */
export type RetryRow = Pick<DeployResultRow, 'sddc' | 'status' | 'reason'>;

/** What `deploy --retry <run>` does: the run's version and options, the SDDCs it deploys again, and those it leaves. */
export interface RetryPlan {
  retryOf: string;
  image: string;
  /** The version the run resolved, never `latest`. */
  version: string;
  /** The run's own options, which the retry keeps. */
  options: Pick<DeployInput, 'instantiate' | 'force' | 'allOrNothing' | 'channel' | 'gate'>;
  retried: RetryRow[];
  /** Failed for a reason no new attempt changes. */
  final: RetryRow[];
}

/**
 * Refusals that running again cannot change: the SDDC's OVF policy, the version's signed provenance and its
 * OVF certificate. Everything else that failed or was skipped (no agent, does not fit, a transfer or an
 * import that failed) may go through next time.
 */
const FINAL_FAILURES: ReadonlySet<string> = new Set(['PolicyRefused', 'CertificateInvalid', ...PROVENANCE_FAILURES]);

/** The error type a row's reason starts with: a typed failure's row reads `Type: message` (failureReason). */
export function reasonType(reason: string | undefined): string | undefined {
  return /^([A-Z][A-Za-z]+): /.exec(reason ?? '')?.[1];
}

/** The failed and skipped rows split into those to deploy again and the final ones, each SDDC once (its first row). */
export function selectRetry(rows: RetryRow[]): Pick<RetryPlan, 'retried' | 'final'> {
  const seen = new Set<string>();
  const retried: RetryRow[] = [];
  const final: RetryRow[] = [];
  for (const row of rows) {
    if ((row.status !== 'failed' && row.status !== 'skipped') || seen.has(row.sddc)) continue;
    seen.add(row.sddc);
    const isFinal = row.status === 'failed' && FINAL_FAILURES.has(reasonType(row.reason) ?? '');
    (isFinal ? final : retried).push({ sddc: row.sddc, status: row.status, ...(row.reason ? { reason: row.reason } : {}) });
  }
  return { retried, final };
}

/**
 * Reads a finished deploy run: its version, its options (from its input) and the rows of its result, or
 * of the failure that carries them (DeployIncomplete, an all-or-nothing NoAgent). A result that left rows
 * out (a fleet past 100 SDDCs) is completed from the catalog's records whose latest attempt was this run's.
 */
export async function retryPlan(typed: string, deps: CliDeps): Promise<RetryPlan> {
  const { handle, workflowId } = await findRun(deps, typed);
  const { type, status } = await handle.describe();
  if (type !== 'DeployToSDDCs') {
    throw new VmhubError('InvalidInput', `${typed} is a ${type} run; --retry takes a deploy (DeployToSDDCs), see \`vmhub runs\``);
  }
  if (status.name === 'RUNNING') {
    throw new VmhubError(
      'DeployRunning',
      `${workflowId} is still running; follow it with \`vmhub wait ${workflowId}\` and retry it once it has ended`,
    );
  }
  const result = await deployOutcome(handle).catch((err: unknown) => rowsOfFailure(err, workflowId, status.name));
  const input = await startInput<DeployInput>(handle);
  const omitted = (result.rowsOmitted ?? 0) > 0;
  const records = omitted ? await (await deps.catalog()).deployments.unfinishedBy(result.image, result.version, workflowId) : [];
  // A rollout wave's deploy keeps its gate and channel: its failed SDDCs pass the same gate before their channel item moves.
  const { instantiate, force, allOrNothing, channel, gate } = input ?? {};
  if (channel) await refuseDuringRollout(deps, result.image, channel);
  return {
    retryOf: workflowId,
    image: result.image,
    version: result.version,
    options: {
      ...(instantiate ? { instantiate } : {}),
      ...(force ? { force } : {}),
      ...(allOrNothing ? { allOrNothing } : {}),
      ...(channel ? { channel } : {}),
      ...(gate ? { gate } : {}),
    },
    ...selectRetry([...result.results, ...records.map(recordRow)]),
  };
}

/** A wave's channel item may not move while a rollout of that channel runs: the two would race for it. */
async function refuseDuringRollout(deps: CliDeps, image: string, channel: string): Promise<void> {
  const id = rolloutWorkflowId(image, channel);
  const running = await (
    await deps.temporal()
  ).workflow
    .getHandle(id)
    .describe()
    .then(
      (d) => d.status.name === 'RUNNING',
      () => false,
    );
  if (running) {
    throw new VmhubError(
      'RolloutInProgress',
      `${id} is running and owns channel ${channel} of ${image}; retry the wave once it has ended`,
    );
  }
}

/** A failed run whose failure carries its rows (NoAgent refuses all or nothing with them); any other failure is no result to retry. */
function rowsOfFailure(err: unknown, workflowId: string, status: string): DeployResult {
  const cause = err instanceof WorkflowFailedError ? err.cause : undefined;
  const details = cause instanceof ApplicationFailure ? (cause.details?.[0] as Partial<DeployResult> | undefined) : undefined;
  if (details?.image && details.version && Array.isArray(details.results)) return details as DeployResult;
  throw new VmhubError(
    'InvalidInput',
    `${workflowId} ended ${status.toLowerCase()} without a result naming its SDDCs (${describeFailure(err)}); deploy again with --to`,
  );
}

function recordRow(r: DeploymentRecord): RetryRow {
  return { sddc: r.sddc, status: r.status === 'skipped' ? 'skipped' : 'failed', ...(r.error ? { reason: r.error } : {}) };
}

/** What the retry deploys again and what it leaves, and why, above the deploy's own output. */
export function renderRetryPlan(plan: RetryPlan, dryRun: boolean): string[] {
  const ref = `${plan.image}@${plan.version}`;
  const lines: string[] = [];
  if (plan.retried.length > 0) {
    const verb = dryRun ? 'would deploy again' : 'deploying again';
    lines.push(`retry of ${plan.retryOf}: ${verb} ${ref} to ${plural(plan.retried.length, 'SDDC')}:`);
    lines.push(...indented(table(['SDDC', 'WAS', 'REASON'], plan.retried.map(cells))));
  }
  if (plan.final.length > 0) {
    lines.push(`not retried, final (running again cannot change it): ${plural(plan.final.length, 'SDDC')}:`);
    lines.push(...indented(table(['SDDC', 'WAS', 'REASON'], plan.final.map(cells))));
  }
  if (plan.retried.length === 0) {
    lines.push(
      plan.final.length === 0
        ? 'nothing to retry: every SDDC was deployed or already present'
        : 'nothing to retry: every other SDDC was deployed or already present',
    );
  } else if (dryRun) {
    lines.push('nothing started (--dry-run)');
  }
  return lines;
}

function cells(r: RetryRow): string[] {
  return [r.sddc, r.status, r.reason ?? 'no reason recorded'];
}

function indented(lines: string[]): string[] {
  return lines.map((l) => `  ${l}`);
}
