import semver from 'semver';
import { VmhubError } from '../errors';

/** How many versions of an image retention keeps. */
export interface RetentionPolicy {
  image: string;
  keep: number;
}

export interface RetentionCandidate {
  version: string;
  status: string;
}

/** Policies keep at least one version: keeping none would retire an image entirely by schedule. */
export function validateKeep(keep: unknown): number {
  if (typeof keep !== 'number' || !Number.isSafeInteger(keep) || keep < 1 || keep > 10_000) {
    throw new VmhubError('InvalidInput', `--keep must be a whole number from 1 to 10000, got ${JSON.stringify(keep)}`);
  }
  return keep;
}

/**
 * The versions retention retires: available ones beyond the newest `keep` (by semantic version) that no
 * SDDC holds. A held version stays even when it is old, and counts towards nothing: the newest `keep`
 * are kept whatever SDDCs hold. Versions in any other state (uploading, failed, retired) are left alone.
 */
export function versionsToRetire(versions: RetentionCandidate[], keep: number, held: ReadonlySet<string>): string[] {
  const available = versions
    .filter((v) => v.status === 'available')
    .map((v) => v.version)
    .sort(semver.rcompare);
  return available.slice(keep).filter((v) => !held.has(v));
}
