import type { Client } from '@temporalio/client';
import type { Catalog } from '../catalog/catalog';
import type { ImageVersionRecord } from '../catalog/image-records';
import type { SddcRecord } from '../catalog/sddc-records';
import type { Config } from '../config';
import { VmhubError } from '../shared/errors';
import { withoutAgent } from '../deploy/agent-liveness';
import { assertDeployable } from '../lifecycle/deprecation';
import { selectSddcs } from '../deploy/resolve-deploy';
import { didYouMean } from '../shared/did-you-mean';
import {
  ALL_SDDCS,
  isLatestRef,
  LATEST_PRE,
  type SddcSelection,
  validateImageName,
  validateSddcNames,
  validateVersion,
  validateVersionRef,
} from '../shared/names';
import { CliError } from './errors';
import { loadTemporal } from './services';

/**
 * What the CLI checks before it starts a workflow, told in the CLI's own words (flags, examples, where
 * things are). The workflows check their input again for those who start them with the Temporal CLI.
 */
// A stopped worker stays listed as a poller for minutes, so only a recent poll counts. An idle worker's
// long poll lasts up to a minute before it polls again: the window is a little longer than that.
const RECENT_POLL_MS = 75_000;

/**
 * `<image>@<version>` from the command line; where a command takes `latest` and `latest-pre` (`latest`
 * true), the version stays such a reference for the catalog's `versions.resolve`.
 */
export function parseRef(ref: string, latest = true): { image: string; version: string } {
  const at = ref.lastIndexOf('@');
  if (at <= 0 || at === ref.length - 1) {
    const e = latest ? 'ubuntu-app@2.3.1, ubuntu-app@latest or ubuntu-app@latest-pre' : 'ubuntu-app@2.3.1';
    throw new VmhubError('InvalidInput', `"${ref}" is not <image>@<version>: e.g. ${e}`);
  }
  const image = validateImageName(ref.slice(0, at), `${ref}:`);
  const version = ref.slice(at + 1);
  return { image, version: latest ? validateVersionRef(version, `${ref}:`) : validateVersion(version, `${ref}:`) };
}

/** A comma-separated list of SDDC names given with `flag`, each valid and given once, or "all" alone (every registered SDDC). */
export function parseSddcList(text: string, flag: string): SddcSelection {
  const names = text
    .split(',')
    .map((n) => n.trim())
    .filter(Boolean);
  if (names.length === 0)
    throw new VmhubError('InvalidInput', `${flag} names no SDDC: e.g. ${flag} east-1,west-1 or ${flag} all`);
  if (names.length === 1 && names[0] === ALL_SDDCS) return ALL_SDDCS;
  return validateSddcNames(names, flag);
}

/** The registered SDDCs named (or every one, for "all"); an unknown name is refused before any workflow starts. */
export async function registeredSddcs(catalog: Catalog, names: SddcSelection, flag: string): Promise<SddcRecord[]> {
  return selectSddcs(await catalog.sddcs.list(), names, (unknown, all) => {
    const registered = all.length > 0 ? all.map((s) => s.name).join(', ') : 'none';
    return new VmhubError(
      'UnknownSddc',
      `${flag} ${unknown.join(', ')}: no SDDC of that name is registered (registered: ${registered}); see \`vmhub sddc list\``,
    );
  });
}

/** The version a deploy would use (`latest` and `latest-pre` resolved): it must be in the catalog, available, and deployable. */
export async function deployableVersion(
  catalog: Catalog,
  image: string,
  version: string,
  force = false,
): Promise<ImageVersionRecord> {
  const record = await catalog.versions.resolve(image, version);
  if (!record) throw await unknownVersion(catalog, image, version);
  assertDeployable(record, new Date(), force);
  if (record.status === 'uploading' && record.owner) {
    // Publishing it again would be refused while that run owns it: waiting for it is what helps.
    const owner = record.owner.workflowId;
    throw new VmhubError(
      'UnknownImage',
      `${image}@${record.version} is still being published by workflow ${owner}; wait for it with \`vmhub wait ${owner}\`, then deploy`,
    );
  }
  if (record.status !== 'available') {
    throw new VmhubError(
      'UnknownImage',
      `${image}@${record.version} is ${record.status}, not available; publish it again or deploy another version`,
    );
  }
  return record;
}

/** UnknownImage for a reference that names no version, listing the available ones. */
export async function unknownVersion(catalog: Catalog, image: string, ref: string): Promise<VmhubError> {
  if (isLatestRef(ref)) {
    const what = ref === LATEST_PRE ? 'version (pre-releases included)' : 'release version (for a pre-release: @latest-pre)';
    return new VmhubError(
      'UnknownImage',
      `${image} has no available, non-deprecated ${what}; see \`vmhub images --image ${image}\``,
    );
  }
  const known = (await catalog.versions.find({ image, status: 'available' })).map((r) => r.version);
  if (known.length > 0)
    return new VmhubError('UnknownImage', `${image}@${ref} is not in the catalog; available versions: ${known.join(', ')}`);
  return new VmhubError(
    'UnknownImage',
    `${image}@${ref} is not in the catalog; no version of ${image} is available${didYouMean(image, await catalog.versions.images())}`,
  );
}

/**
 * UnknownImage unless some version of the image is in the catalog (in any state), naming the image names
 * close to it: a policy or a filter for an image that does not exist is most often a typo.
 */
export async function requireKnownImage(catalog: Catalog, image: string, what: string): Promise<void> {
  const images = await catalog.versions.images();
  if (images.includes(image)) return;
  const hint = didYouMean(image, images);
  throw new VmhubError(
    'UnknownImage',
    `no version of ${image} is in the catalog${hint}; ${what} is for a published image: publish it first (\`vmhub images\` lists the images)`,
  );
}

/** The queues of those given that no worker polled in the last 75 s, each named once. */
export async function idleQueues(
  client: Client,
  queues: Array<{ taskQueue: string; kind: 'workflow' | 'activity' }>,
): Promise<string[]> {
  const view = loadTemporal().temporalView(client);
  const counts = await Promise.all(queues.map((q) => view.recentPollers(q.taskQueue, q.kind, RECENT_POLL_MS)));
  return [...new Set(queues.filter((_, i) => counts[i] === 0).map((q) => q.taskQueue))];
}

/**
 * The task queues of the running runs given that no worker polled for workflow tasks in the last 75 s: such
 * a run cannot move, answer a query or stop on a cancel until a worker polls its queue.
 */
export async function unpolledQueues(
  client: Client,
  runs: Array<{ status: { name: string }; taskQueue: string }>,
): Promise<Set<string>> {
  const running = [...new Set(runs.filter((r) => r.status.name === 'RUNNING').map((r) => r.taskQueue))];
  return new Set(
    await idleQueues(
      client,
      running.map((taskQueue) => ({ taskQueue, kind: 'workflow' as const })),
    ),
  );
}

/** Refused unless a worker polled each queue in the last 75 s. */
export async function requirePollers(
  client: Client,
  queues: Array<{ taskQueue: string; kind: 'workflow' | 'activity' }>,
): Promise<void> {
  const idle = await idleQueues(client, queues);
  if (idle.length > 0) {
    throw new CliError(
      'NoWorker',
      `no worker has polled task queue ${idle.join(' or ')} in the last 75 s; start one with \`npm run worker\``,
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

/** The SDDCs whose agent polled neither its task queue nor its quick queue in the last 75 s (the quick queue keeps polling while every download slot is busy). */
export function silentAgents(client: Client, sddcs: SddcRecord[]): Promise<SddcRecord[]> {
  return withoutAgent(loadTemporal().temporalView(client), sddcs, RECENT_POLL_MS);
}

/**
 * A deploy skips an SDDC whose agent is silent (silentAgents). Refused with NoAgent when no agent of
 * `sddcs` polled in the last 75 s, since nothing could be deployed, or when one did not and `allOrNothing`
 * asks for every SDDC or none.
 */
export async function requireAgents(client: Client, sddcs: SddcRecord[], allOrNothing = false): Promise<void> {
  const refusal = noAgentRefusal(sddcs, await silentAgents(client, sddcs), allOrNothing);
  if (refusal) throw refusal;
}

/** The NoAgent a deploy to `sddcs` is refused with when `missing` of them have no agent (requireAgents); none when it goes ahead. */
export function noAgentRefusal(sddcs: SddcRecord[], missing: SddcRecord[], allOrNothing: boolean): VmhubError | undefined {
  if (missing.length === 0 || (!allOrNothing && missing.length < sddcs.length)) return undefined;
  const shown = missing.slice(0, 10);
  const named = `${shown.map((s) => `${s.name} (task queue ${s.taskQueue})`).join(', ')}${missing.length > shown.length ? ` and ${missing.length - shown.length} more` : ''}`;
  const start =
    missing.length === 1
      ? `start it with \`npm run agent -- ${missing[0].name}\``
      : `start each with \`npm run agent -- <name>\`, e.g. \`npm run agent -- ${missing[0].name}\``;
  const why =
    missing.length === sddcs.length
      ? 'so there is nothing to deploy to'
      : 'and --all-or-nothing deploys nowhere until every SDDC has one (without it, the deploy skips them)';
  return new VmhubError('NoAgent', `no agent has polled in the last 75 s for ${named}, ${why}; ${start}`);
}
