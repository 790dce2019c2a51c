import fs from 'node:fs';
import path from 'node:path';
import semver from 'semver';
import { removeEmptyDirs } from '../datastore/files';
import { deploymentPaths, type DeploymentPaths } from '../datastore/layout';
import { signedItemMembers } from '../deploy/expected-members';
import { checkFileAgainst, signedLocally } from '../deploy/provenance-check';
import type { TrustedKey } from '../provenance/keys';
import { acquireLock, releaseLock, type LockHolder } from '../datastore/locks';
import { blockIndexPath, localBases } from '../deploy/block-index';
import { isVmhubError, VmhubError } from '../shared/errors';
import type { Resources } from '../images/ovf/metadata';
import type { SignedMember } from '../provenance/statement';
import { verifyItem } from './item-check';
import {
  importImage,
  instantiate,
  lookupItem,
  placementOf,
  VcenterConnection,
  type ImportResult,
  type Progress,
} from './library-import';
import type { ImageVersion } from '../shared/image-version';
import { itemDescription, type InstantiateCheck } from '../shared/target-kinds/content-library';
import { checkTaskTarget, type AgentVcenter } from './agent-vcenter';
import type { ContentLibraryTarget, LibraryPlacement } from '../shared/target-kinds/kind';
import { libraryOf, parseTarget } from '../shared/sddc-target';
import { plural } from '../shared/units';

/**
 * The agent's content library tasks as plain steps over one vCenter connection: the activity adds the
 * lock, heartbeats, cancellation and typed failures.
 */
export interface FindItemOutput {
  /**
   * `present` only when the item's files were checked against the expected digests; `drifted` when a file
   * is missing, resized, replaced or extra; `unverified` when they could not be checked here (too much to
   * read back, or no expected digests): the import checks them again against the verified copy.
   */
  state: 'absent' | 'importing' | 'present' | 'drifted' | 'unverified';
  target?: LibraryPlacement;
  /** Why an item vmhub finished is not counted present. */
  problems?: string[];
}

/** A lookup runs on the agent's quick queue: it reads back at most this much of an item that reports no SHA-256. */
const LOOKUP_READ_LIMIT = 1024 * 1024 * 1024;

export interface ImportOutput {
  status: 'deployed' | 'already-present';
  target: LibraryPlacement;
  /** The verified copy in the datastore, when it is kept. */
  path?: string;
  bytesSent: number;
  bytesSkipped: number;
}

/**
 * Logs in to the agent's own vCenter for a task, once the task's target is found to name that vCenter and
 * to ask for no looser trust (VcenterMismatch, VcenterNotConfigured otherwise, before any connection).
 */
export async function connectToTarget(
  raw: ContentLibraryTarget,
  sddc: string,
  vcenter: AgentVcenter | undefined,
  signal: AbortSignal,
): Promise<VcenterConnection> {
  const agent = checkTaskTarget(raw, sddc, vcenter);
  const target = libraryOf(parseTarget(raw, 'content library target'));
  if (!target) throw new VmhubError('InvalidInput', 'the target is not a content library');
  return VcenterConnection.open(target, agent, signal);
}

/**
 * Whether the library holds the image already, and where: an item vmhub finished counts as present only
 * when its files match `members` (their SHA-256 as the vCenter reports it, or read back up to
 * LOOKUP_READ_LIMIT) and it holds no other file.
 */
export async function findItem(
  conn: VcenterConnection,
  ref: ImageVersion,
  members: readonly SignedMember[] | undefined,
  signal: AbortSignal,
): Promise<FindItemOutput> {
  const found = await lookupItem(conn, ref, signal);
  const target = found.item && placementOf(conn.target, found.item);
  if (found.state !== 'present') return { state: found.state, target };
  if (!members) return { state: 'unverified', target, problems: ['no expected SHA-256 of every file to check it against'] };
  const verdict = await verifyItem(conn.library, found.item!.id, members, { signal, readLimitBytes: LOOKUP_READ_LIMIT });
  if (verdict.present) return { state: 'present', target };
  if (verdict.problems.length > 0) return { state: 'drifted', target, problems: verdict.problems };
  return { state: 'unverified', target, problems: [`${verdict.unread.join(', ')} not read back: more than a lookup reads`] };
}

/**
 * Imports the verified copy at `paths.final`, unless the library holds the item already with the expected
 * files (a finished import whose result was lost: its copy may be gone already). The files are checked
 * against `members`, or without them against the verified copy's own members. An item whose files differ is
 * made whole again: one with an extra file is removed and imported anew (an update session cannot be
 * trusted to drop a file on every vCenter), one with a file missing or replaced gets its files sent again
 * through an update session. `imported` tells whether it was sent.
 */
export async function importVerifiedCopy(
  conn: VcenterConnection,
  ref: ImageVersion,
  paths: DeploymentPaths,
  options: {
    members?: readonly SignedMember[];
    signal: AbortSignal;
    onProgress: (p: Progress) => void;
    trusted: readonly TrustedKey[];
  },
): Promise<{ result: ImportResult; imported: boolean; problems?: string[] }> {
  const { signal } = options;
  const found = await lookupItem(conn, ref, signal);
  const stat = await fs.promises.lstat(paths.final).catch(() => undefined);
  // The copy's provenance, verified anew with this agent's keys: its members are what an item must hold.
  const provenance = stat?.isFile() ? await signedLocally(paths, ref, options.trusted) : undefined;
  let problems: string[] | undefined;
  if (found.state === 'present') {
    const expected = provenance ? signedItemMembers(ref, provenance) : options.members;
    const onBytes = (bytesDone: number) =>
      options.onProgress({ file: 'reading the item back', bytesDone, bytesTotal: ref.sizeBytes });
    const verdict = expected && (await verifyItem(conn.library, found.item!.id, expected, { signal, onBytes }));
    if (verdict?.present) {
      const placement = placementOf(conn.target, found.item!);
      return { result: { status: 'already-present', placement, bytesSent: 0, bytesSkipped: 0 }, imported: false };
    }
    problems = verdict?.problems;
    if (provenance && verdict) await reopenItem(conn, ref, found.item!.id, verdict.extra.length > 0, signal);
  }
  if (!provenance) {
    throw new VmhubError('StagingMissing', `the verified copy ${paths.final} is gone; deploy again to download it`);
  }
  // The copy must still be the signed bytes: a copy that differs is removed, so a deploy downloads it again.
  await checkFileAgainst(paths.final, ref.format, provenance).catch(async (err: unknown) => {
    if (isVmhubError(err) && err.type === 'ProvenanceMismatch') await removeCopy(paths);
    throw err;
  });
  const result = await importImage(conn, ref, { file: paths.final, signal, onProgress: options.onProgress });
  return { result, imported: true, problems };
}

/** Makes a drifted item importable again: removed when it holds a file it should not, else marked as importing. */
async function reopenItem(conn: VcenterConnection, ref: ImageVersion, itemId: string, remove: boolean, signal: AbortSignal) {
  if (remove) await conn.library.deleteItem(itemId, { signal });
  else await conn.library.setDescription(itemId, itemDescription(ref.image, ref.version, ref.sha256, true), { signal });
}

/**
 * After an import: keeps the verified copy with `keepStaging`; else keeps it as the base the next
 * version's delta deploy copies blocks from when it has a block index, dropping older ones; else removes
 * it. `removed` tells whether it went, and its folders with it may.
 */
export async function settleVerifiedCopy(
  root: string,
  paths: DeploymentPaths,
  ref: ImageVersion,
  options: { keepStaging: boolean; holder: LockHolder },
): Promise<{ path?: string; removed: boolean }> {
  if (options.keepStaging) return fs.existsSync(paths.final) ? { path: paths.final, removed: false } : { removed: false };
  if (fs.existsSync(blockIndexPath(paths.final))) {
    await fs.promises.writeFile(paths.imported, '');
    await dropOlderCopies(root, ref, options.holder);
    return { removed: false };
  }
  await removeCopy(paths);
  return { removed: true };
}

/** The output an import reports. */
export function importOutput(r: ImportResult, keptPath: string | undefined): ImportOutput {
  const out: ImportOutput = { status: r.status, target: r.placement, bytesSent: r.bytesSent, bytesSkipped: r.bytesSkipped };
  if (keptPath !== undefined) out.path = keptPath;
  return out;
}

async function removeCopy(paths: DeploymentPaths): Promise<void> {
  await Promise.all(
    [paths.final, paths.digest, paths.envelope, blockIndexPath(paths.final), paths.imported].map((f) =>
      fs.promises.rm(f, { force: true }),
    ),
  );
}

/**
 * Removes the verified copies of the image's earlier versions, kept as delta bases until a newer one was
 * imported; a copy not imported yet, or whose lock is held (a download or an import of it running), is left alone.
 */
async function dropOlderCopies(root: string, ref: ImageVersion, holder: LockHolder): Promise<void> {
  for (const base of await localBases(root, ref.image, ref.version)) {
    if (!semver.valid(base.version) || !semver.lt(base.version, ref.version)) continue;
    const paths = deploymentPaths(path.dirname(base.file), ref.image, base.version, ref.format);
    if (paths.final !== base.file || !fs.existsSync(paths.imported)) continue;
    if (!(await acquireLock(paths.lock, holder)).acquired) continue;
    try {
      await removeCopy(paths);
    } finally {
      await releaseLock(paths.lock, holder);
    }
    await removeEmptyDirs(paths.dir);
  }
}

/**
 * Deploys a VM named `vmName` from the item, checks its CPUs and memory are `expected`, and deletes it
 * again. A mismatch is final (InstantiateMismatch).
 */
export async function checkInstantiates(
  conn: VcenterConnection,
  placement: LibraryPlacement,
  vmName: string,
  expected: Pick<Resources, 'cpus' | 'memoryMiB'>,
  options: { retry: boolean; signal: AbortSignal },
): Promise<InstantiateCheck> {
  const vm = await instantiate(conn, placement, vmName, options);
  if (vm.cpus !== expected.cpus || vm.memoryMiB !== expected.memoryMiB) {
    throw new VmhubError(
      'InstantiateMismatch',
      `the VM deployed from ${placement.itemName} has ${plural(vm.cpus, 'CPU')} and ${vm.memoryMiB} MiB; the catalog says ${plural(expected.cpus, 'CPU')} and ${expected.memoryMiB} MiB`,
    );
  }
  return { ...vm, removed: true };
}
