import { VmhubError } from '../shared/errors';

/**
 * Deprecation of one image version, as Azure Compute Gallery's exclude-from-latest and end-of-life: a
 * deprecated version is left out of `latest`; past its end of life a deploy refuses it unless forced.
 */
export interface Deprecation {
  deprecatedAt: Date;
  message?: string;
  endOfLife?: Date;
}

/** The part of a version record the lifecycle rules read. */
export interface LifecycleState {
  image: string;
  version: string;
  status: string;
  deprecation?: Deprecation;
  /** The retire's claim or tombstone: when (once done), and by which run. */
  retired?: { at?: Date; by: { workflowId: string } };
}

/** True once the version's end-of-life date has passed. */
export function pastEndOfLife(deprecation: Deprecation | undefined, now: Date): boolean {
  return deprecation?.endOfLife !== undefined && deprecation.endOfLife.getTime() <= now.getTime();
}

/**
 * Fails with ImageRetired when a deploy must not use the version: it is retired (its bytes are gone,
 * so force cannot help), or past its end of life and not forced.
 */
export function assertDeployable(record: LifecycleState, now: Date, force = false): void {
  const ref = `${record.image}@${record.version}`;
  if (record.status === 'retired' || record.status === 'retiring') {
    throw new VmhubError('ImageRetired', `${ref} is ${record.status}: its blob and deployed copies are removed`);
  }
  if (!force && pastEndOfLife(record.deprecation, now)) {
    const { endOfLife, message } = record.deprecation!;
    throw new VmhubError(
      'ImageRetired',
      `${ref} reached its end of life on ${endOfLife!.toISOString()}${message ? ` (${message})` : ''}; deploy it anyway with --force ("force": true in a workflow input)`,
    );
  }
}

/** A short mark for listings: `deprecated`, `end of life`, or nothing. */
export function lifecycleMark(record: LifecycleState, now: Date): string {
  if (!record.deprecation) return '';
  return pastEndOfLife(record.deprecation, now) ? 'end of life' : 'deprecated';
}

/** The lines `show` prints about a version's lifecycle: its deprecation, its retire. */
export function lifecycleLines(record: LifecycleState, now: Date): string[] {
  const lines: string[] = [];
  const d = record.deprecation;
  if (d) {
    const eol = d.endOfLife ? `, end of life ${d.endOfLife.toISOString()}${pastEndOfLife(d, now) ? ' (passed)' : ''}` : '';
    lines.push(`deprecated ${d.deprecatedAt.toISOString()}${eol}${d.message ? `: ${d.message}` : ''}`);
  }
  const r = record.retired;
  if (r) lines.push(`${r.at ? `retired    ${r.at.toISOString()}` : 'retiring  '} by workflow ${r.by.workflowId}`);
  return lines;
}
