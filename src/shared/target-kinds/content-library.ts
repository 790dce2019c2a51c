import { VmhubError } from '../errors';
import { GUEST_CHECKS } from '../health-gate';
import { failer, type ContentLibraryTarget, type LibraryPlacement, type TargetKind } from './kind';

/** What an instantiate check saw in the VM it deployed from the item, before it removed it. */
export interface InstantiateCheck {
  vm: string;
  cpus: number;
  memoryMiB: number;
  removed: boolean;
}

/** `vmhub sddc add`'s content library options: `--vcenter` asks for a content library. */
export interface LibraryOptions {
  vcenter?: string;
  library?: string;
  datastore?: string;
  resourcePool?: string;
  instantiate?: boolean;
  guestCheck?: string;
  /** Refused: the agent's own configuration holds its login and trust (see REMOVED_OPTIONS). */
  usernameEnv?: string;
  passwordEnv?: string;
  insecureTls?: boolean;
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);

export function isLoopbackUrl(url: URL): boolean {
  return LOOPBACK.has(url.hostname);
}

/** A vCenter's base URL: https (http only on the loopback), without credentials, query or fragment. */
export function parseVcenterUrl(value: unknown, fail: (msg: string) => never): URL {
  let url: URL;
  try {
    url = new URL(String(value));
  } catch {
    return fail(`vcenter ${JSON.stringify(String(value).slice(0, 80))} is not a URL`);
  }
  const plainUrl = !url.username && !url.password && !url.search && !url.hash;
  if (!plainUrl || !/^https?:$/.test(url.protocol)) fail('vcenter must be an https URL without credentials, query or fragment');
  // The login travels in the clear over http: only a vCenter on this machine may be reached that way.
  if (url.protocol === 'http:' && !isLoopbackUrl(url)) fail('vcenter must use https unless it is on the loopback');
  return url;
}

/**
 * A target as the catalog keeps it. Fields of older targets (`usernameEnv`, `passwordEnv`, `insecureTls`)
 * are not kept: an agent's login and trust are its own. A task's raw target is checked against the
 * agent's vCenter before this (src/sddc/agent-vcenter.ts).
 */
function parseLibrary(t: Record<string, unknown>, fail: (msg: string) => never): ContentLibraryTarget {
  const url = parseVcenterUrl(t.vcenter, fail);
  const name = (key: string, value: unknown, optional = false): string | undefined => {
    if (value === undefined && optional) return undefined;
    if (typeof value !== 'string' || value.length === 0 || value.length > 80 || /[\0-\x1f/\\]/.test(value))
      fail(`${key} must be a name of 1 to 80 characters without slashes or control characters`);
    return value as string;
  };
  if (t.instantiate !== undefined && typeof t.instantiate !== 'boolean') fail('instantiate must be true or false');
  const target: ContentLibraryTarget = { kind: 'content-library', vcenter: url.href, library: name('library', t.library)! };
  const datastore = name('datastore', t.datastore, true);
  const resourcePool = name('resourcePool', t.resourcePool, true);
  if (datastore) target.datastore = datastore;
  if (resourcePool) target.resourcePool = resourcePool;
  if (t.instantiate === true) target.instantiate = true;
  const guestCheck = parseGuestCheck(t.guestCheck, fail);
  if (guestCheck) target.guestCheck = guestCheck;
  const networkMap = parseNetworkMap(t.networkMap, fail);
  if (networkMap) target.networkMap = networkMap;
  return target;
}

/**
 * A target's gate guest check as it is kept: `power-state`, or nothing for `required` (the default), so a
 * target that asks for the full check is stored as it always was.
 */
export function parseGuestCheck(value: unknown, fail: (msg: string) => never): 'power-state' | undefined {
  if (value !== undefined && !GUEST_CHECKS.includes(value as never))
    fail(
      `guestCheck must be ${GUEST_CHECKS.map((g) => JSON.stringify(g)).join(' or ')}, not ${JSON.stringify(String(value)).slice(0, 40)}`,
    );
  return value === 'power-state' ? value : undefined;
}

/** A network's name in a descriptor or a vCenter: 1 to 80 characters, no control characters. */
function checkNetworkName(name: unknown, fail: (msg: string) => never): string {
  if (typeof name !== 'string' || name.length === 0 || name.length > 80 || /[\0-\x1f\x7f]/.test(name))
    fail(`network names must be 1 to 80 characters without control characters, not ${JSON.stringify(name).slice(0, 90)}`);
  return name as string;
}

function parseNetworkMap(raw: unknown, fail: (msg: string) => never): Record<string, string> | undefined {
  if (raw === undefined) return undefined;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    return fail('networkMap must map network names to network names');
  const entries = Object.entries(raw).map(([from, to]) => [checkNetworkName(from, fail), checkNetworkName(to, fail)]);
  return entries.length > 0 ? Object.fromEntries(entries.sort(([a], [b]) => a.localeCompare(b))) : undefined;
}

/**
 * A target's network map changed by `--network-map` values: `from=to` maps a descriptor's network, `from=`
 * removes its mapping.
 */
export function withNetworkMap(target: ContentLibraryTarget, changes: readonly string[]): ContentLibraryTarget {
  const fail = failer('--network-map');
  const map: Record<string, string> = { ...target.networkMap };
  for (const change of changes) {
    const at = change.indexOf('=');
    if (at < 0) fail(`${JSON.stringify(change.slice(0, 90))} is not <network>=<network>, e.g. --network-map prod="VM Network"`);
    const from = checkNetworkName(change.slice(0, at), fail);
    const to = change.slice(at + 1);
    if (to === '') delete map[from];
    else map[from] = checkNetworkName(to, fail);
  }
  const { networkMap: _old, ...rest } = target;
  return parseLibrary({ ...rest, networkMap: map }, fail);
}

/** Options of earlier versions that set what the agent now holds itself, and what sets it instead. */
const REMOVED_OPTIONS: Array<[keyof LibraryOptions, string, string]> = [
  ['usernameEnv', '--username-env', 'VMHUB_VCENTER_USERNAME_FILE'],
  ['passwordEnv', '--password-env', 'VMHUB_VCENTER_PASSWORD_FILE'],
  [
    'insecureTls',
    '--insecure-tls',
    'VMHUB_VCENTER_CA_FILE or VMHUB_VCENTER_THUMBPRINT (VMHUB_VCENTER_INSECURE_TLS=1 on the loopback)',
  ],
];

/**
 * The target the options describe: with `--vcenter` a content library, without one none (any other of
 * its options is then refused). The login and the TLS trust are not the catalog's to give.
 */
function libraryFromOptions(_sddc: string, o: LibraryOptions): ContentLibraryTarget | undefined {
  for (const [key, flag, instead] of REMOVED_OPTIONS) {
    if (o[key] !== undefined && o[key] !== false) {
      throw new VmhubError(
        'InvalidInput',
        `${flag} is no longer accepted: an agent's vCenter login and TLS trust come from its own configuration, not the catalog; set ${instead} in the agent's environment`,
      );
    }
  }
  if (o.vcenter === undefined) {
    const stray = Object.entries(o).filter(([, v]) => v !== undefined && v !== false);
    if (stray.length > 0) {
      throw new VmhubError('InvalidInput', `the content library options (${stray.map(([k]) => k).join(', ')}) need --vcenter`);
    }
    return undefined;
  }
  const fields = {
    vcenter: o.vcenter,
    library: o.library ?? 'vmhub',
    datastore: o.datastore,
    resourcePool: o.resourcePool,
    instantiate: o.instantiate,
    guestCheck: o.guestCheck,
  };
  return parseLibrary(fields, failer('content library target'));
}

export const contentLibrary: TargetKind<ContentLibraryTarget, LibraryPlacement, LibraryOptions> = {
  kind: 'content-library',
  parse: parseLibrary,
  options: [
    {
      flags: '--vcenter <url>',
      description: "deploy into this vCenter's content library (default: a directory of the agent's datastore)",
    },
    { flags: '--library <name>', description: 'the content library, created when missing (default vmhub)' },
    { flags: '--datastore <name>', description: "a new library's datastore (default: the vCenter's first)" },
    { flags: '--resource-pool <name>', description: 'where instantiate checks deploy (default: the first cluster)' },
    { flags: '--username-env <VAR>', description: "refused: the agent's VMHUB_VCENTER_USERNAME_FILE holds its login" },
    { flags: '--password-env <VAR>', description: "refused: the agent's VMHUB_VCENTER_PASSWORD_FILE holds its login" },
    { flags: '--insecure-tls', description: "refused: the agent's VMHUB_VCENTER_CA_FILE or _THUMBPRINT sets its trust" },
    { flags: '--instantiate', description: 'check every deployment by making a VM from the item and removing it' },
    {
      flags: '--guest-check <mode>',
      description:
        "a rollout gate's guest check: required (VMware Tools running, the default) or power-state (powered on is enough)",
    },
  ],
  fromOptions: libraryFromOptions,
  label: (t) => `content library${t.guestCheck === 'power-state' ? ' (guest check: power state)' : ''}`,
  describe: (t) =>
    `content library ${t.library} on ${t.vcenter}${t.networkMap ? `, networks ${describeNetworkMap(t.networkMap)}` : ''}${t.guestCheck === 'power-state' ? '; gate guest check: power state only' : ''}`,
  addNote: (t) => `; its agent must be started with VMHUB_VCENTER_URL=${t.vcenter} and its own trust and login`,
  library: (t) => t,
  placement: (row) => row.target,
  describePlacement: (p) => `library ${p.library}/${p.itemName} on ${p.vcenter} (item ${p.itemId})`,
};

/** A network map for people: `prod → VM Network, test → DC0_DVPG0`. */
export function describeNetworkMap(map: Record<string, string>): string {
  return Object.entries(map)
    .map(([from, to]) => `${from} → ${to}`)
    .join(', ');
}

/** The library item of an image version: `<image>-<version>`. */
export function libraryItemName(image: string, version: string): string {
  return `${image}-${version}`;
}

/**
 * The library item of an image's channel: `<image>-<channel>`. Its ID never changes: each version the
 * channel points at replaces its files through an update session.
 */
export function channelItemName(image: string, channel: string): string {
  return `${image}-${channel}`;
}

/**
 * An item's description records what it holds. An item still being imported says so, so a new attempt
 * knows to finish it rather than take it for a finished one.
 */
const IMPORTING = ' (import in progress)';

export function itemDescription(image: string, version: string, sha256: string, importing: boolean): string {
  return `vmhub image ${image} ${version} sha256:${sha256}${importing ? IMPORTING : ''}`;
}

export type ItemState = 'absent' | 'present' | 'importing' | 'conflict';

/** What an item under the image's name holds, judged by its description: only vmhub's own, with this SHA-256, is ours. */
export function itemState(description: string | undefined | null, sha256: string, exists: boolean): ItemState {
  if (!exists) return 'absent';
  const m = /^vmhub image \S+ \S+ sha256:([0-9a-f]{64})( \(import in progress\))?$/.exec(description ?? '');
  if (!m || m[1] !== sha256) return 'conflict';
  return m[2] ? 'importing' : 'present';
}

/** The SHA-256 an item's description records, for a conflict message. */
export function recordedSha256(description: string | undefined | null): string | undefined {
  return /sha256:([0-9a-f]{64})/.exec(description ?? '')?.[1];
}
