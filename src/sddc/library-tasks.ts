import fs from 'node:fs';
import path from 'node:path';
import semver from 'semver';
import { removeEmptyDirs } from '../datastore/files';
import { deploymentPaths, type DeploymentPaths } from '../datastore/layout';
import { checkFileAgainst, signedLocally } from '../deploy/provenance-check';
import type { TrustedKey } from '../provenance/keys';
import { acquireLock, releaseLock, type LockHolder } from '../datastore/locks';
import { blockIndexPath, localBases } from '../deploy/block-index';
import { isVmhubError, VmhubError } from '../shared/errors';
import type { Resources } from '../images/ovf/metadata';
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
import { type InstantiateCheck } from '../shared/target-kinds/content-library';
import { credentialsFor } from './vcenter-login';
import type { ContentLibraryTarget, LibraryPlacement } from '../shared/target-kinds/kind';
import { libraryOf, parseTarget } from '../shared/sddc-target';
import { plural } from '../shared/units';

/**
 * The agent's content library tasks as plain steps over one vCenter connection: the activity adds the
 * lock, heartbeats, cancellation and typed failures.
 */
export interface FindItemOutput {
  state: 'absent' | 'importing' | 'present';
  target?: LibraryPlacement;
}

export interface ImportOutput {
  status: 'deployed' | 'already-present';
  target: LibraryPlacement;
  /** The verified copy in the datastore, when it is kept. */
  path?: string;
  bytesSent: number;
  bytesSkipped: number;
}

/** Logs in to a task's vCenter: the target checked, the login read from `env` under the names it gives, never one of `forbidden`. */
export async function connectToTarget(
  raw: ContentLibraryTarget,
  env: NodeJS.ProcessEnv,
  forbidden: Set<string>,
  signal: AbortSignal,
): Promise<VcenterConnection> {
  const target = libraryOf(parseTarget(raw, 'content library target'));
  if (!target) throw new VmhubError('InvalidInput', 'the target is not a content library');
  return VcenterConnection.open(target, credentialsFor(target, env, forbidden), signal);
}

/** Whether the library holds the image already, and where. */
export async function findItem(conn: VcenterConnection, ref: ImageVersion, signal: AbortSignal): Promise<FindItemOutput> {
  const found = await lookupItem(conn, ref, signal);
  return { state: found.state, target: found.item && placementOf(conn.target, found.item) };
}

/**
 * Imports the verified copy at `paths.final`, unless the library holds the item already (a finished
 * import whose result was lost: its copy may be gone already). `imported` tells whether it was sent.
 */
export async function importVerifiedCopy(
  conn: VcenterConnection,
  ref: ImageVersion,
  paths: DeploymentPaths,
  options: { signal: AbortSignal; onProgress: (p: Progress) => void; trusted: readonly TrustedKey[] },
): Promise<{ result: ImportResult; imported: boolean }> {
  const found = await lookupItem(conn, ref, options.signal);
  if (found.state === 'present') {
    const placement = placementOf(conn.target, found.item!);
    return { result: { status: 'already-present', placement, bytesSent: 0, bytesSkipped: 0 }, imported: false };
  }
  // The copy must still be the signed bytes: hashed again against its provenance, verified anew with this
  // agent's keys. A copy that differs is removed, so a deploy downloads it again.
  const stat = await fs.promises.lstat(paths.final).catch(() => undefined);
  if (!stat?.isFile()) {
    throw new VmhubError('StagingMissing', `the verified copy ${paths.final} is gone; deploy again to download it`);
  }
  const provenance = await signedLocally(paths, ref, options.trusted);
  await checkFileAgainst(paths.final, ref.format, provenance).catch(async (err: unknown) => {
    if (isVmhubError(err) && err.type === 'ProvenanceMismatch') await removeCopy(paths);
    throw err;
  });
  const result = await importImage(conn, ref, { file: paths.final, signal: options.signal, onProgress: options.onProgress });
  return { result, imported: true };
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
    [paths.final, paths.digest, paths.envelope, blockIndexPath(paths.final)].map((f) => fs.promises.rm(f, { force: true })),
  );
}

/**
 * Removes the verified copies of the image's earlier versions, kept as delta bases until a newer one was
 * imported; a copy whose lock is held (a download or an import of it running) is left alone.
 */
async function dropOlderCopies(root: string, ref: ImageVersion, holder: LockHolder): Promise<void> {
  for (const base of await localBases(root, ref.image, ref.version)) {
    if (!semver.valid(base.version) || !semver.lt(base.version, ref.version)) continue;
    const paths = deploymentPaths(path.dirname(base.file), ref.image, base.version, ref.format);
    if (paths.final !== base.file) continue;
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
