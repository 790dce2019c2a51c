import fs from 'node:fs';
import path from 'node:path';
import { activityInfo, ApplicationFailure, cancellationDetails, cancellationSignal, heartbeat, log } from '@temporalio/activity';
import semver from 'semver';
import type { Config } from '../config';
import { blockIndexPath, localBases } from '../deploy/block-index';
import { VmhubError } from '../errors';
import type { Resources } from '../images/ovf/metadata';
import {
  discardImport,
  importImage,
  instantiate,
  InstantiateFailed,
  lookupItem,
  placementOf,
  removeItem,
  VcenterConnection,
  type ImageRef,
  type ImportResult,
  type Progress,
} from '../sddc/library-import';
import {
  credentialsFor,
  parseTarget,
  type ContentLibraryTarget,
  type InstantiateCheck,
  type LibraryPlacement,
} from '../sddc/target';
import { VsphereApiError } from '../sddc/vsphere-rest';
import type { Topology } from '../topology/topology';
import { removeEmptyDirs } from '../datastore/files';
import { deploymentDir, deploymentPaths } from '../datastore/layout';
import { acquireLock, lockHolder, releaseLock } from '../datastore/locks';
import { checkDownloadInput, type ImageToDeploy } from '../deploy/download-request';

/**
 * An SDDC agent's content library activities: after `downloadImage` has verified the image into the
 * agent's datastore, `importToLibrary` makes it an item of the SDDC's vCenter library; `findLibraryItem`
 * tells beforehand whether it is there already, and `instantiateFromLibrary` checks a VM can be made
 * from it. The vCenter login comes from the agent's own environment, under the names the target gives.
 */
export interface ContentLibraryDeps {
  config: Config;
  /** The SDDC this agent serves. */
  sddc: string;
  /** Its storage credentials' variable names are never sent to a vCenter. */
  topology: Topology;
  /** VMHUB_KEEP_STAGING=1 keeps the verified copy in the datastore after a successful import. */
  env?: NodeJS.ProcessEnv;
}

export interface LibraryTaskInput extends Omit<ImageToDeploy, 'blob'> {
  sddc: string;
  target: ContentLibraryTarget;
}

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

export interface InstantiateInput extends LibraryTaskInput {
  placement: LibraryPlacement;
  expected: Pick<Resources, 'cpus' | 'memoryMiB'>;
}

const HEARTBEAT_MS = 5_000;

export function createContentLibraryActivities({ config, sddc, topology, env = process.env }: ContentLibraryDeps) {
  const root = config.datastore ?? path.join(config.dataDir, 'sddc', sddc);
  const keepStaging = env.VMHUB_KEEP_STAGING === '1';
  const forbidden = new Set(
    [
      ...topology.storage.flatMap((s) => [s.accountKeyEnv, s.connectionStringEnv, s.sasTokenEnv]),
      ...topology.sources.map((s) => s.sasTokenEnv),
    ].filter((n): n is string => n !== undefined),
  );

  /** Checks the task, logs in to the target's vCenter, runs fn, logs out; failures become what the workflow can act on. */
  async function withVcenter<T>(
    input: LibraryTaskInput,
    fn: (conn: VcenterConnection, ref: ImageRef, signal: AbortSignal) => Promise<T>,
  ): Promise<T> {
    const signal = cancellationSignal();
    try {
      checkDownloadInput({ ...input, blob: '', sources: [] }, sddc);
      const target = parseTarget(input.target, 'content library target');
      if (target.kind !== 'content-library') throw new VmhubError('InvalidInput', 'the target is not a content library');
      const ref: ImageRef = {
        image: input.image,
        version: input.version,
        format: input.format,
        sha256: input.sha256,
        sizeBytes: input.sizeBytes,
      };
      const conn = await VcenterConnection.open(target, credentialsFor(target, env, forbidden), signal);
      try {
        return await fn(conn, ref, signal);
      } finally {
        await conn.close();
      }
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      throw asLibraryFailure(err);
    }
  }

  return {
    /** Whether the library already holds the image: a redeploy then needs no download. */
    async findLibraryItem(input: LibraryTaskInput): Promise<FindItemOutput> {
      return withVcenter(input, async (conn, ref, signal) => {
        const found = await lookupItem(conn, ref, signal);
        return { state: found.state, target: found.item && placementOf(conn.target, found.item) };
      });
    },

    /** Removes the version's library item, for a retire; an item already gone is no error. */
    async removeLibraryItem(input: LibraryTaskInput): Promise<{ removed: LibraryPlacement | null }> {
      return withVcenter(input, async (conn, ref, signal) => {
        const item = await removeItem(conn, ref, signal);
        return { removed: item ? placementOf(conn.target, item) : null };
      });
    },

    /**
     * Imports the verified copy in `<datastore>/<image>/<version>/` into the library, resuming the item's
     * open update session after a crash, then removes the copy unless VMHUB_KEEP_STAGING=1. Holds the
     * download's lock, so a download and an import of one version never overlap. A cancel gives the import
     * up: the session is cancelled and the half item removed.
     */
    async importToLibrary(input: LibraryTaskInput): Promise<ImportOutput> {
      return withVcenter(input, async (conn, ref, signal) => {
        const dir = await deploymentDir(root, input.image, input.version);
        const paths = deploymentPaths(dir, input.image, input.version, input.format);
        const info = activityInfo();
        const holder = lockHolder(info.activityId, info.workflowExecution?.workflowId);
        const lock = await acquireLock(paths.lock, holder);
        if (!lock.acquired) {
          throw ApplicationFailure.retryable(
            `${paths.final} is in use by pid ${lock.holder.pid} (activity ${lock.holder.activityId})`,
            'ImportInProgress',
          );
        }
        let progress: Progress = { bytesDone: 0, bytesTotal: input.sizeBytes };
        let removed = false;
        const beat = () => heartbeat({ sddc, phase: 'importing', ...progress });
        const keepAlive = setInterval(beat, HEARTBEAT_MS);
        try {
          const found = await lookupItem(conn, ref, signal);
          // A finished import whose result was lost: its copy may be gone already.
          if (found.state === 'present')
            return await done({
              status: 'already-present',
              placement: placementOf(conn.target, found.item!),
              bytesSent: 0,
              bytesSkipped: 0,
            });
          if (!(await verifiedCopy(paths, input))) {
            throw ApplicationFailure.nonRetryable(
              `the verified copy ${paths.final} is gone; deploy again to download it`,
              'StagingMissing',
            );
          }
          const result = await importImage(conn, ref, {
            file: paths.final,
            signal,
            onProgress: (p) => {
              progress = p;
            },
          });
          log.info('imported into the content library', {
            item: result.placement.itemName,
            library: result.placement.library,
            vcenter: result.placement.vcenter,
            status: result.status,
            bytesSent: result.bytesSent,
            bytesSkipped: result.bytesSkipped,
            attempt: info.attempt,
          });
          return await done(result);
        } catch (err) {
          if (signal.aborted && cancellationDetails()?.cancelRequested) {
            await discardImport(conn, ref).catch((e: unknown) =>
              log.warn('could not give the cancelled import up', { error: e }),
            );
            log.info('import cancelled; update session cancelled and the half item removed', { sddc });
          }
          throw err;
        } finally {
          clearInterval(keepAlive);
          await releaseLock(paths.lock, holder);
          if (removed) await removeEmptyDirs(paths.dir);
        }

        /** The result, once the verified copy is removed (or kept, with VMHUB_KEEP_STAGING=1). */
        async function done(r: ImportResult): Promise<ImportOutput> {
          const out: ImportOutput = {
            status: r.status,
            target: r.placement,
            bytesSent: r.bytesSent,
            bytesSkipped: r.bytesSkipped,
          };
          if (keepStaging) {
            if (fs.existsSync(paths.final)) out.path = paths.final;
          } else if (fs.existsSync(blockIndexPath(paths.final))) {
            // The newest imported copy stays as the base the next version's delta deploy copies blocks from.
            await dropOlderCopies(root, input);
          } else {
            await removeCopy(paths);
            removed = true;
          }
          return out;
        }
      });
    },

    /**
     * Deploys a VM from the item, checks its CPUs and memory are the catalog's, and deletes it again:
     * proof the item can be instantiated. A mismatch is final (InstantiateMismatch).
     */
    async instantiateFromLibrary(input: InstantiateInput): Promise<InstantiateCheck> {
      return withVcenter(input, async (conn, _ref, signal) => {
        const info = activityInfo();
        const run = info.workflowExecution?.runId.slice(0, 8) ?? 'manual';
        const vmName = `vmhub-check-${input.placement.itemName}-${run}-${info.activityId}`;
        const keepAlive = setInterval(() => heartbeat({ sddc, phase: 'instantiating' }), HEARTBEAT_MS);
        try {
          const vm = await instantiate(conn, input.placement, vmName, { retry: info.attempt > 1, signal });
          if (vm.cpus !== input.expected.cpus || vm.memoryMiB !== input.expected.memoryMiB) {
            throw ApplicationFailure.nonRetryable(
              `the VM deployed from ${input.placement.itemName} has ${vm.cpus} CPUs and ${vm.memoryMiB} MiB; the catalog says ${input.expected.cpus} CPUs and ${input.expected.memoryMiB} MiB`,
              'InstantiateMismatch',
            );
          }
          log.info('instantiated a VM from the library item and removed it', {
            item: input.placement.itemName,
            vm: vm.vm,
            cpus: vm.cpus,
            memoryMiB: vm.memoryMiB,
          });
          return { ...vm, removed: true };
        } finally {
          clearInterval(keepAlive);
        }
      });
    },
  };
}

export type ContentLibraryActivities = ReturnType<typeof createContentLibraryActivities>;

/** The final copy the download left: the right size, and its digest file naming the expected SHA-256. */
async function verifiedCopy(paths: ReturnType<typeof deploymentPaths>, input: LibraryTaskInput): Promise<boolean> {
  const stat = await fs.promises.lstat(paths.final).catch(() => undefined);
  if (!stat?.isFile() || stat.size !== input.sizeBytes) return false;
  const digest = await fs.promises.readFile(paths.digest, 'utf8').catch(() => '');
  return digest.split(/\s/)[0] === input.sha256;
}

async function removeCopy(paths: ReturnType<typeof deploymentPaths>): Promise<void> {
  await Promise.all([paths.final, paths.digest, blockIndexPath(paths.final)].map((f) => fs.promises.rm(f, { force: true })));
}

/**
 * Removes the verified copies of the image's earlier versions, kept as delta bases until a newer one was
 * imported; a copy whose lock is held (a download or an import of it running) is left alone.
 */
async function dropOlderCopies(root: string, input: LibraryTaskInput): Promise<void> {
  for (const base of await localBases(root, input.image, input.version)) {
    if (!semver.valid(base.version) || !semver.lt(base.version, input.version)) continue;
    const paths = deploymentPaths(path.dirname(base.file), input.image, base.version, input.format);
    if (paths.final !== base.file) continue;
    const holder = lockHolder(activityInfo().activityId, activityInfo().workflowExecution?.workflowId);
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
 * A VmhubError is final, with its type, and so is a vCenter's refusal to instantiate the item; a refused
 * login cannot change while the agent runs with the same environment (VcenterLoginFailed); anything else
 * (an unreachable vCenter, a dropped connection) is retried.
 */
function asLibraryFailure(err: unknown): unknown {
  if (err instanceof VmhubError) return ApplicationFailure.nonRetryable(err.message, err.type);
  if (err instanceof InstantiateFailed) return ApplicationFailure.nonRetryable(err.message, 'InstantiateFailed');
  if (err instanceof VsphereApiError && (err.type === 'unauthenticated' || err.type === 'InvalidLogin')) {
    return ApplicationFailure.nonRetryable(err.message, 'VcenterLoginFailed');
  }
  return err;
}
