import { ApplicationFailure, ChildWorkflowFailure } from '@temporalio/workflow';
import type { DeployCounts, DeployResult, DeployResultRow } from '../shared/deploy-input';
import { nameFirstFew } from '../shared/failures';
import { plural } from '../shared/units';

/**
 * What a deploy's result and its DeployIncomplete details may hold. A fleet-wide outage fails every
 * SDDC: the rows are bounded so the payload stays far under Temporal's 2 MB limit whatever the fleet,
 * and the catalog keeps every row (`vmhub show <image>@<version>`).
 */
export const ROWS_KEPT = 100;
/** A reason longer than this is cut in the result; the catalog's row keeps all of it. */
const REASON_CHARS = 300;

export function countRows(rows: DeployResultRow[], into: DeployCounts = {}): DeployCounts {
  for (const row of rows) into[row.status] = (into[row.status] ?? 0) + 1;
  return into;
}

export function addCounts(into: DeployCounts, counts: DeployCounts): void {
  for (const [status, n] of Object.entries(counts) as Array<[keyof DeployCounts, number]>) into[status] = (into[status] ?? 0) + n;
}

/** A row as the result keeps it: its reason cut to a bounded length. */
export function keptRow(row: DeployResultRow): DeployResultRow {
  if (row.reason === undefined || row.reason.length <= REASON_CHARS) return row;
  return { ...row, reason: `${row.reason.slice(0, REASON_CHARS - 1)}…` };
}

/**
 * The result of a deploy: at most ROWS_KEPT of the rows it lists, and, when it lists fewer than it has,
 * how many it left out and where they are.
 */
export function boundedResult(
  ref: { image: string; version: string },
  rows: DeployResultRow[],
  listable: number,
  counts?: DeployCounts,
): DeployResult {
  const results = rows.slice(0, ROWS_KEPT).map(keptRow);
  const result: DeployResult = { image: ref.image, version: ref.version, results, ...(counts ? { counts } : {}) };
  const omitted = listable - results.length;
  if (omitted > 0) {
    result.rowsOmitted = omitted;
    result.note = `${omitted} more rows are not listed here; \`vmhub show ${ref.image}@${ref.version}\` and the catalog's deployments have every row`;
  }
  return result;
}

/** The DeployIncomplete message: how many failed, naming the first few. */
export function incompleteMessage(failed: DeployResultRow[], failedCount: number, total: number): string {
  return `${failedCount} of ${plural(total, 'SDDC')} failed: ${nameFirstFew(failed, (r) => `${r.sddc} (${r.reason})`, failedCount)}`;
}

/** A search attribute value holds at most 2 KB: large fleets list the SDDCs that fit, the catalog has them all. */
const SEARCH_ATTRIBUTE_BYTES = 1800;

export function searchableNames(names: string[]): string[] {
  const kept: string[] = [];
  let bytes = 2;
  for (const name of names) {
    bytes += name.length + 3;
    if (bytes > SEARCH_ATTRIBUTE_BYTES) break;
    kept.push(name);
  }
  return kept;
}

/** A row's reason for a failure: its type and message, and what a timeout's cause says. */
export function failureReason(err: unknown): string {
  if (err instanceof ApplicationFailure && err.type) return `${err.type}: ${err.message}`;
  if (err instanceof Error) {
    const inner = err.cause instanceof Error && err.message.includes('timed out') ? ` (${err.cause.message})` : '';
    return `${err.message}${inner}`;
  }
  return String(err);
}

/**
 * The rows of a deploy child run (a batch, a rollout's wave) that failed: DeployIncomplete carries them; any
 * other failure (the run could not start or plan) fails each of its SDDCs with that reason.
 */
export function rowsOfFailedDeploy(err: unknown, sddcs: string[], dataCenter: string): Partial<DeployResult> {
  const cause = err instanceof ChildWorkflowFailure ? err.cause : err;
  if (cause instanceof ApplicationFailure && cause.type === 'DeployIncomplete') {
    const details = cause.details?.[0] as Partial<DeployResult> | undefined;
    if (Array.isArray(details?.results)) return details;
  }
  const reason = failureReason(cause);
  const results = sddcs.map((sddc) => ({ sddc, dataCenter, status: 'failed' as const, source: null, reason }));
  return { results, counts: countRows(results) };
}
