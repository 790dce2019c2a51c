import semver from 'semver';
import type { Catalog } from '../catalog/catalog';
import { VmhubError } from '../shared/errors';
import { validateImageName } from '../shared/names';
import type { TemporalView } from '../temporal/connection';
import type { VersionRef } from '../shared/image-version';

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
 * SDDC holds and no channel points at now or pointed at just before. A held version stays even when it is old, and counts towards nothing: the newest `keep`
 * are kept whatever SDDCs hold. Versions in any other state (uploading, failed, retired) are left alone.
 */
export function versionsToRetire(versions: RetentionCandidate[], keep: number, held: ReadonlySet<string>): string[] {
  const available = versions
    .filter((v) => v.status === 'available')
    .map((v) => v.version)
    .sort(semver.rcompare);
  return available.slice(keep).filter((v) => !held.has(v));
}

/**
 * The versions retention retires now, at most `limit`: first those left `retiring` by a retire that
 * crashed or was cancelled midway (with a policy or not: their copies may be half gone, and only
 * finishing the retire ends that), then those under one image's policy or every policy.
 */
export async function retentionPlan(
  deps: {
    catalog: Pick<Catalog, 'versions' | 'retention' | 'deployments' | 'channels'>;
    temporal: Pick<TemporalView, 'isClosed'>;
  },
  input: { image?: string; limit: number },
): Promise<VersionRef[]> {
  const { catalog, temporal } = deps;
  if (input.image !== undefined) validateImageName(input.image);
  const policies = input.image
    ? [await catalog.retention.get(input.image)].filter((p) => p !== null)
    : await catalog.retention.list();
  const plan: VersionRef[] = [];
  for (const v of await catalog.versions.list(input.image, { status: 'retiring' })) {
    // A retire still running finishes its own version; a retention run would only conflict with it.
    if (v.retired?.by && !(await temporal.isClosed(v.retired.by))) continue;
    plan.push({ image: v.image, version: v.version });
  }
  for (const policy of policies) {
    const versions = await catalog.versions.list(policy.image);
    // A channel's version and the one before it stay: a rollback takes the copies SDDCs still hold.
    const held = new Set([
      ...(await catalog.deployments.heldVersions(policy.image)),
      ...(await catalog.channels.heldVersions(policy.image)),
    ]);
    for (const version of versionsToRetire(versions, policy.keep, held)) plan.push({ image: policy.image, version });
  }
  return plan.slice(0, input.limit);
}
