import { VmhubError } from './errors';

/** Names and versions as vmhub accepts them (docs/architecture.md). Plain functions: the workflow bundle imports them. */
export const IMAGE_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;
/** semver.org's own pattern: MAJOR.MINOR.PATCH, optional pre-release and build. */
export const SEMVER =
  /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$/;

export function isSemver(v: unknown): v is string {
  return typeof v === 'string' && v.length <= 128 && SEMVER.test(v);
}

export function validateImageName(image: unknown): string {
  if (typeof image !== 'string' || !IMAGE_NAME.test(image)) {
    throw new VmhubError('InvalidInput', `image name ${JSON.stringify(image)} must match ${IMAGE_NAME.source}`);
  }
  return image;
}

export function validateVersion(version: unknown): string {
  if (version === undefined) {
    throw new VmhubError(
      'InvalidInput',
      'no version given and the image declares no semantic version; pass one (e.g. "version": "1.2.3")',
    );
  }
  if (!isSemver(version)) {
    throw new VmhubError(
      'InvalidInput',
      `version ${JSON.stringify(version)} is not a semantic version (MAJOR.MINOR.PATCH[-pre][+build])`,
    );
  }
  return version;
}

export const SDDC_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;

export function validateSddcName(name: unknown): string {
  if (typeof name !== 'string' || !SDDC_NAME.test(name)) {
    throw new VmhubError('InvalidInput', `SDDC name ${JSON.stringify(name)} must match ${SDDC_NAME.source}`);
  }
  return name;
}
