import { VmhubError } from './errors';

/**
 * Names and versions as vmhub accepts them. Plain functions: the workflow bundle imports them. Each
 * validator takes the field's name as the caller knows it (`image` in a workflow input, `--image` on
 * the command line), so its message speaks the caller's words and gives an example.
 */
export const IMAGE_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;
/** semver.org's own pattern: MAJOR.MINOR.PATCH, optional pre-release and build. */
export const SEMVER =
  /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$/;

/**
 * What a deploy or `show` may name instead of a version: `latest`, the highest available, non-deprecated
 * release; `latest-pre`, the same with pre-releases counted.
 */
export const LATEST = 'latest';
export const LATEST_PRE = 'latest-pre';
export type LatestRef = typeof LATEST | typeof LATEST_PRE;

export function isLatestRef(v: unknown): v is LatestRef {
  return v === LATEST || v === LATEST_PRE;
}

export function isSemver(v: unknown): v is string {
  return typeof v === 'string' && v.length <= 128 && SEMVER.test(v);
}

export function validateImageName(image: unknown, field = 'image'): string {
  if (typeof image !== 'string' || !IMAGE_NAME.test(image)) {
    const lower = typeof image === 'string' && IMAGE_NAME.test(image.toLowerCase()) ? ` (try ${image.toLowerCase()})` : '';
    throw new VmhubError(
      'InvalidInput',
      `${field} ${JSON.stringify(image)} is not an image name${lower}: use 1 to 63 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit, e.g. ubuntu-app`,
    );
  }
  return image;
}

export function validateVersion(version: unknown, field = 'version'): string {
  if (version === undefined) {
    throw new VmhubError(
      'InvalidInput',
      `no ${field} given and the image declares no semantic version; give one, e.g. ${field} 1.2.3`,
    );
  }
  if (!isSemver(version)) throw new VmhubError('InvalidInput', `${field} ${JSON.stringify(version)} ${versionHint(version)}`);
  return version;
}

/** A version, `latest` or `latest-pre`: what a deploy may name. */
export function validateVersionRef(version: unknown, field = 'version'): string {
  if (isLatestRef(version)) return version;
  if (version === undefined) throw new VmhubError('InvalidInput', `no ${field} given; give one, e.g. 1.2.3 or latest`);
  if (!isSemver(version)) {
    throw new VmhubError('InvalidInput', `${field} ${JSON.stringify(version)} ${versionHint(version)}, or latest, or latest-pre`);
  }
  return version;
}

/** Why a text is no semantic version, in the words of the mistake people make most. */
function versionHint(version: unknown): string {
  if (typeof version === 'string') {
    if (/^v\d/i.test(version) && isSemver(version.slice(1))) return `has a leading "v": drop the v (${version.slice(1)})`;
    if (/^\d+(\.\d+)?$/.test(version)) {
      const padded = [...version.split('.'), '0', '0'].slice(0, 3).join('.');
      return `needs three numbers, MAJOR.MINOR.PATCH (e.g. ${padded})`;
    }
    if (/^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)\.\d+/.test(version)) {
      return 'has more than three numbers: a semantic version is MAJOR.MINOR.PATCH[-pre][+build] (e.g. 9.1.0+25262073)';
    }
  }
  return 'is not a semantic version MAJOR.MINOR.PATCH[-pre][+build] (e.g. 1.2.3 or 1.3.0-rc.1)';
}

export const SDDC_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;

/**
 * What an SDDC list may say instead of names: every registered SDDC. Reserved, so that `--to all` has one
 * meaning: no SDDC may be registered under it.
 */
export const ALL_SDDCS = 'all';
export type SddcSelection = string[] | typeof ALL_SDDCS;

export function validateSddcName(name: unknown, field = 'SDDC name'): string {
  if (name === ALL_SDDCS) {
    throw new VmhubError(
      'InvalidInput',
      `${field} "all" is not an SDDC name: "all" stands for every registered SDDC, so no SDDC may be called so; e.g. east-1`,
    );
  }
  if (typeof name !== 'string' || !SDDC_NAME.test(name)) {
    const suggestion = typeof name === 'string' ? name.toLowerCase() : '';
    const lower = SDDC_NAME.test(suggestion) && suggestion !== ALL_SDDCS ? ` (try ${suggestion})` : '';
    throw new VmhubError(
      'InvalidInput',
      `${field} ${JSON.stringify(name)} is not an SDDC name${lower}: use 1 to 63 lower-case letters, digits or '-', starting with a letter or digit, e.g. east-1`,
    );
  }
  return name;
}

/** A list of SDDC names, each valid and none twice; the message names the SDDC given twice. */
export function validateSddcNames(names: unknown[], field = 'sddcs'): string[] {
  const seen = new Set<string>();
  for (const n of names) {
    if (n === ALL_SDDCS) {
      throw new VmhubError('InvalidInput', `${field} lists "all" among SDDC names: give "all" alone (every SDDC), or only names`);
    }
    const name = validateSddcName(n, `${field} entry`);
    if (seen.has(name)) throw new VmhubError('InvalidInput', `${field} lists SDDC ${name} twice`);
    seen.add(name);
  }
  return names as string[];
}

/** `"all"`, or a list of SDDC names as validateSddcNames checks them; `allowEmpty` for lists that may name none. */
export function validateSddcSelection(value: unknown, field: string, allowEmpty = false): SddcSelection {
  if (value === ALL_SDDCS) return value;
  if (!Array.isArray(value) || (value.length === 0 && !allowEmpty)) {
    throw new VmhubError('InvalidInput', `${field} must be "all" or a ${allowEmpty ? '' : 'non-empty '}list of SDDC names`);
  }
  return validateSddcNames(value, field);
}

/** The SDDCs a selection names, as a summary or a message shows them. */
export function describeSddcs(selection: SddcSelection): string {
  return selection === ALL_SDDCS ? 'every SDDC' : selection.join(', ');
}

/** A channel's name: starts with a letter and has no dot, so `<image>-<channel>` never reads as a versioned item. */
export const CHANNEL_NAME = /^[a-z][a-z0-9-]{0,30}$/;

export function validateChannelName(name: unknown, field = 'channel'): string {
  if (typeof name !== 'string' || !CHANNEL_NAME.test(name)) {
    throw new VmhubError(
      'InvalidInput',
      `${field} ${JSON.stringify(name)} is not a channel name: use 1 to 31 lower-case letters, digits or '-', starting with a letter, e.g. stable`,
    );
  }
  return name;
}
