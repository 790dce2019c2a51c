import type { DeployCounts, DeployResultRow, SddcProgress } from '../shared/deploy-input';
import { formatBytes } from '../shared/units';

/**
 * The text of a run's "current details" in the Web UI (markdown): a headline, then where the run stands.
 * Workflows see no heartbeats, so these move at what a workflow learns itself (a range staged, an SDDC
 * done); the bytes in between are read by src/cli/run-progress.ts.
 */

/** Failed SDDCs a line names before it counts the rest. */
const NAMED = 5;

export function detailsText(headline: string, ...lines: string[]): string {
  return [`**${headline}**`, ...lines.filter((l) => l !== '')].join('\n\n');
}

/** 0.456 → "45 %"; never 100 % before the end. */
export function percent(done: number, total: number): string {
  if (total <= 0) return '0 %';
  const value = Math.floor((100 * done) / total);
  return `${done < total ? Math.min(value, 99) : 100} %`;
}

/** "staging 45 % of 1.5 GiB" */
export function stagingLine(bytesStaged: number, bytesTotal: number): string {
  return `staging ${percent(bytesStaged, bytesTotal)} of ${formatBytes(bytesTotal)}`;
}

/** "replicating to west-replica, east-replica: 1 of 2 done" */
export function replicatingLine(locations: string[], done: number): string {
  if (locations.length === 0) return 'no replica locations';
  return `replicating to ${locations.join(', ')}: ${done} of ${locations.length} done`;
}

/** "deploying: 2 of 3 done, east-3 failed, 1 skipped", from the rows of the SDDCs that ended so far. */
export function deployingLine(rows: Pick<DeployResultRow, 'sddc' | 'status'>[], total: number, ended = false): string {
  const failed = rows.filter((r) => r.status === 'failed').map((r) => r.sddc);
  return outcomeLine(ended ? 'deployed' : 'deploying', countStatuses(rows), total, failed);
}

export function countStatuses(rows: Pick<DeployResultRow, 'status'>[]): DeployCounts {
  const counts: DeployCounts = {};
  for (const r of rows) counts[r.status] = (counts[r.status] ?? 0) + 1;
  return counts;
}

/** The same from counts by status, and the names of failed SDDCs known so far (a fleet keeps only some rows). */
export function outcomeLine(verb: string, counts: DeployCounts, total: number, failed: string[]): string {
  const ended = Object.values(counts).reduce((n, c) => n + (c ?? 0), 0);
  const parts = [`${verb}: ${ended} of ${total} done`];
  const failures = counts.failed ?? 0;
  if (failures > 0) {
    const named = failed.slice(0, NAMED);
    const rest = failures - named.length;
    parts.push(`${[...named, ...(rest > 0 ? [`${rest} more`] : [])].join(', ')} failed`);
  }
  if (counts.skipped) parts.push(`${counts.skipped} skipped`);
  return parts.join(', ');
}

/** A table of the SDDCs of one batch: where each stands, its source and its outcome's reason. */
export function sddcTable(rows: SddcProgress[]): string {
  if (rows.length === 0) return '';
  const cell = (text: string) => text.replace(/\|/g, '\\|').replace(/\s+/g, ' ');
  return [
    '| SDDC | state | from |',
    '| --- | --- | --- |',
    ...rows.map((r) => {
      const state = r.status ? `${r.status}${r.reason ? `: ${r.reason}` : ''}` : r.phase;
      return `| ${cell(r.sddc)} | ${cell(state)} | ${cell(r.source ?? '-')} |`;
    }),
  ].join('\n');
}
