import fs from 'node:fs';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import type { Catalog, ImageVersionRecord, SddcRecord } from '../catalog/catalog';
import type { Config } from '../config';
import { VmhubError } from '../errors';
import { assertDeployable } from '../lifecycle/deprecation';
import { IMAGE_NAME, isSemver, SDDC_NAME } from '../names';
import { checkSourceUrl } from '../source/source';
import { CliError } from './errors';
import { loadTemporal } from './services';

/**
 * What the CLI checks before it starts a workflow, told in the CLI's own words (flags, examples, where
 * things are). The workflows check their input again for those who start them with the Temporal CLI.
 */
const RECENT_POLL_MS = 60_000;

function lowercaseHint(text: string, pattern: RegExp): string {
  const lower = text.toLowerCase();
  return lower !== text && pattern.test(lower) ? ` (did you mean ${lower}?)` : '';
}

export function checkImageName(name: string, what = '--image'): string {
  if (IMAGE_NAME.test(name)) return name;
  throw new VmhubError(
    'InvalidInput',
    `${what} "${name}" is not a valid image name${lowercaseHint(name, IMAGE_NAME)}: use lowercase letters, digits, '.', '_' and '-', starting with a letter or digit, at most 63 characters (e.g. ubuntu-app)`,
  );
}

/** `label` is how the operator wrote the version: `--version 1.0` or `ubuntu-app@1.0`. */
export function checkVersion(version: string, label = `--version ${version}`): string {
  if (isSemver(version as unknown)) return version;
  const withoutV = version.replace(/^[vV]/, '');
  if (withoutV !== version && isSemver(withoutV)) {
    throw new VmhubError('InvalidInput', `${label}: drop the v, e.g. ${withoutV}`);
  }
  const short = /^(\d+)(?:\.(\d+))?$/.exec(withoutV);
  const example = short ? `${short[1]}.${short[2] ?? '0'}.0` : '1.0.0';
  throw new VmhubError(
    'InvalidInput',
    `${label} is not a semantic version: use MAJOR.MINOR.PATCH, e.g. ${example} (a pre-release or build may follow: 1.0.0-rc.1, 1.0.0+build.5)`,
  );
}

export function checkSddcName(name: string, what = 'SDDC name'): string {
  if (SDDC_NAME.test(name)) return name;
  throw new VmhubError(
    'InvalidInput',
    `${what} "${name}" is not a valid SDDC name${lowercaseHint(name, SDDC_NAME)}: use lowercase letters, digits and '-', starting with a letter or digit, at most 63 characters (e.g. east-1)`,
  );
}

/** `<image>@<version>` or `<image>@latest` from the command line. */
export function parseRef(ref: string, allowLatest = true): { image: string; version: string } {
  const at = ref.lastIndexOf('@');
  if (at <= 0 || at === ref.length - 1) {
    throw new VmhubError(
      'InvalidInput',
      `"${ref}" is not <image>@<version>: e.g. ubuntu-app@2.3.1${allowLatest ? ' or ubuntu-app@latest' : ''}`,
    );
  }
  const image = checkImageName(ref.slice(0, at), `${ref}:`);
  const version = ref.slice(at + 1);
  if (allowLatest && version === 'latest') return { image, version };
  return { image, version: checkVersion(version, ref) };
}

/** A comma-separated list of SDDC names given with `flag`; each must be valid and given once. */
export function parseSddcList(text: string, flag: string): string[] {
  const names = text
    .split(',')
    .map((n) => n.trim())
    .filter(Boolean);
  if (names.length === 0) throw new VmhubError('InvalidInput', `${flag} names no SDDC: e.g. ${flag} east-1,west-1`);
  for (const n of names) checkSddcName(n, flag);
  const twice = names.filter((n, i) => names.indexOf(n) !== i);
  if (twice.length > 0) throw new VmhubError('InvalidInput', `${flag} lists ${[...new Set(twice)].join(', ')} twice`);
  return names;
}

/** The registered SDDCs named (or every one, for "all"); an unknown name is refused before any workflow starts. */
export async function registeredSddcs(catalog: Catalog, names: string[] | 'all', flag: string): Promise<SddcRecord[]> {
  const all = await catalog.listSddcs();
  if (names === 'all') {
    if (all.length === 0)
      throw new VmhubError('UnknownSddc', 'no SDDC is registered; add one with `vmhub sddc add <name> --dc <data-center>`');
    return all;
  }
  const byName = new Map(all.map((s) => [s.name, s]));
  const unknown = names.filter((n) => !byName.has(n));
  if (unknown.length > 0) {
    const registered = all.length > 0 ? all.map((s) => s.name).join(', ') : 'none';
    throw new VmhubError(
      'UnknownSddc',
      `${flag} ${unknown.join(', ')}: no SDDC of that name is registered (registered: ${registered}); see \`vmhub sddc list\``,
    );
  }
  return names.map((n) => byName.get(n)!);
}

/** The version a deploy would use: it must be in the catalog, available, and deployable. */
export async function deployableVersion(
  catalog: Catalog,
  image: string,
  version: string,
  force = false,
): Promise<ImageVersionRecord> {
  const record = version === 'latest' ? await catalog.latest(image) : await catalog.getVersion(image, version);
  if (!record) {
    const known = (await catalog.listVersions(image)).filter((r) => r.status === 'available').map((r) => r.version);
    throw new VmhubError(
      'UnknownImage',
      version === 'latest'
        ? `${image} has no available release version; see \`vmhub images --image ${image}\``
        : `${image}@${version} is not in the catalog; ${known.length > 0 ? `available versions: ${known.join(', ')}` : `no version of ${image} is available`}`,
    );
  }
  assertDeployable(record, new Date(), force);
  if (record.status !== 'available') {
    throw new VmhubError(
      'UnknownImage',
      `${image}@${record.version} is ${record.status}, not available; publish it again or deploy another version`,
    );
  }
  return record;
}

/** Refused unless a worker polled each queue within the last minute (a stopped worker stays listed a while). */
export async function requirePollers(
  client: Client,
  queues: Array<{ taskQueue: string; kind: 'workflow' | 'activity' }>,
): Promise<void> {
  const view = loadTemporal().temporalView(client);
  const counts = await Promise.all(queues.map((q) => view.recentPollers(q.taskQueue, q.kind, RECENT_POLL_MS)));
  const idle = [...new Set(queues.filter((_, i) => counts[i] === 0).map((q) => q.taskQueue))];
  if (idle.length > 0) {
    throw new CliError(
      'NoWorker',
      `no worker has polled task queue ${idle.join(' or ')} within the last minute; start one with \`npm run worker\``,
    );
  }
}

/** The control plane's queues a publish or deploy needs served: its workflows, its bookkeeping and its transfers. */
export function requireControlWorkers(client: Client, config: Config): Promise<void> {
  return requirePollers(client, [
    { taskQueue: config.taskQueue, kind: 'workflow' },
    { taskQueue: config.taskQueue, kind: 'activity' },
    { taskQueue: config.transferTaskQueue, kind: 'activity' },
  ]);
}

/** Refused with NoAgent unless each SDDC's agent polled its task queue within the last minute. */
export async function requireAgents(client: Client, sddcs: SddcRecord[]): Promise<void> {
  const view = loadTemporal().temporalView(client);
  const missing: SddcRecord[] = [];
  // A bounded number of questions at once, whatever the fleet's size.
  for (let i = 0; i < sddcs.length; i += 16) {
    const slice = sddcs.slice(i, i + 16);
    const counts = await Promise.all(slice.map((s) => view.recentPollers(s.taskQueue, 'activity', RECENT_POLL_MS)));
    missing.push(...slice.filter((_, j) => counts[j] === 0));
  }
  if (missing.length === 0) return;
  const shown = missing.slice(0, 10);
  throw new VmhubError(
    'NoAgent',
    `no agent has polled within the last minute for ${shown.map((s) => `${s.name} (task queue ${s.taskQueue})`).join(', ')}${missing.length > shown.length ? ` and ${missing.length - shown.length} more` : ''}; start each with \`npm run agent -- <name>\`, e.g. \`npm run agent -- ${missing[0].name}\``,
  );
}

function inside(root: string, candidate: string): boolean {
  const rel = path.relative(root, candidate);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/**
 * A publish source as the workflow reads it. A URL is checked and kept. A path may be given relative to
 * the current directory, absolute, or relative to the first repository root; a file inside a root is
 * passed on relative to that first root when it lies there, else absolute.
 */
export function resolveSourceArg(source: string, roots: string[], cwd = process.cwd()): string {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(source)) return checkSourceUrl(source);
  const addRoot = 'move it under a root, or add its folder to VMHUB_REPOSITORY_ROOTS (folders separated by ":")';
  const rootList = roots.length > 0 ? roots.join(', ') : 'none configured';
  const fromCwd = path.resolve(cwd, source);
  const fromRoot = roots.length > 0 ? path.resolve(roots[0], source) : fromCwd;
  for (const candidate of path.isAbsolute(source) ? [fromCwd] : [fromCwd, fromRoot]) {
    if (!fs.existsSync(candidate)) continue;
    const root = roots.find((r) => inside(r, candidate));
    if (!root) continue;
    if (!fs.statSync(candidate).isFile()) throw new VmhubError('InvalidSource', `source ${source} is not a file (${candidate})`);
    return inside(roots[0], candidate) ? path.relative(roots[0], candidate) : candidate;
  }
  if (fs.existsSync(fromCwd)) {
    throw new VmhubError('InvalidSource', `source ${fromCwd} is outside the repository roots (${rootList}); ${addRoot}`);
  }
  if (!inside(roots[0] ?? cwd, fromRoot)) {
    throw new VmhubError('InvalidSource', `source ${source} is outside the repository roots (${rootList}); ${addRoot}`);
  }
  throw new VmhubError(
    'InvalidSource',
    `source ${source} was found neither from the current directory (${fromCwd}) nor in the repository (${rootList})`,
  );
}
