import semver from 'semver';
import type { ImageVersionRecord } from '../catalog/image-records';

/**
 * The highest available version of `versions` below `version` that `fits`: the earlier version a new one
 * is compared with or starts from. Undefined when there is none, or when `version` is not semantic.
 */
export function highestEarlier<V extends Pick<ImageVersionRecord, 'version' | 'status'>>(
  versions: readonly V[],
  version: string,
  fits: (v: V) => boolean = () => true,
): V | undefined {
  if (!semver.valid(version)) return undefined;
  return versions
    .filter((v) => v.status === 'available' && semver.valid(v.version) && semver.lt(v.version, version) && fits(v))
    .sort((a, b) => semver.rcompare(a.version, b.version))[0];
}
