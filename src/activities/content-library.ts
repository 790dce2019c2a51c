import { ApplicationFailure, activityInfo, cancellationDetails, cancellationSignal, heartbeat, log } from '@temporalio/activity';
import type { Config } from '../config';
import { removeEmptyDirs } from '../datastore/files';
import { datastoreRoot, openDeployment } from '../datastore/layout';
import { releaseLock } from '../datastore/locks';
import { checkDownloadInput } from '../deploy/download-request';
import { loadTrustedKeys, type TrustedKey } from '../provenance/keys';
import { VmhubError } from '../shared/errors';
import type { Resources } from '../images/ovf/metadata';
import {
  discardImport,
  InstantiateFailed,
  placementOf,
  removeItem,
  type Progress,
  type VcenterConnection,
} from '../sddc/library-import';
import type { ImageVersion, SddcCopy } from '../shared/image-version';
import type { Envelope } from '../provenance/dsse';
import { signedDigests } from '../deploy/expected-members';
import {
  checkInstantiates,
  connectToTarget,
  findItem,
  importOutput,
  importVerifiedCopy,
  settleVerifiedCopy,
  type FindItemOutput,
  type ImportOutput,
} from '../sddc/library-tasks';
import type { InstantiateCheck } from '../shared/target-kinds/content-library';
import type { ContentLibraryTarget, LibraryPlacement } from '../shared/target-kinds/kind';
import { VsphereApiError } from '../sddc/vsphere-rest';
import { loadAgentVcenter, type AgentVcenter } from '../sddc/agent-vcenter';
import { lockVersionFiles } from './agent';
import { keepBeating } from './keep-beating';

export type { FindItemOutput, ImportOutput } from '../sddc/library-tasks';

/**
 * An SDDC agent's content library activities: after `downloadImage` has verified the image into the
 * agent's datastore, `importToLibrary` makes it an item of the SDDC's vCenter library; `findLibraryItem`
 * tells beforehand whether it is there already, and `instantiateFromLibrary` checks a VM can be made
 * from it. The vCenter, its trust and its login are the agent's own (src/sddc/agent-vcenter.ts): a task
 * whose target names another is refused before any connection.
 */
export interface ContentLibraryDeps {
  config: Config;
  /** The SDDC this agent serves. */
  sddc: string;
  /**
   * The agent's VMHUB_VCENTER_* (read at start: a wrong one stops the agent), and VMHUB_KEEP_STAGING=1,
   * which keeps the verified copy in the datastore after a successful import.
   */
  env?: NodeJS.ProcessEnv;
  /** The signers whose bytes this agent imports; read from VMHUB_TRUSTED_KEYS when not given. */
  trusted?: readonly TrustedKey[];
}

export interface LibraryTaskInput extends SddcCopy {
  target: ContentLibraryTarget;
  /** The catalog's copy of the version's signed provenance: the item's files are checked against it once it verifies here. */
  envelope?: Envelope;
}

export interface InstantiateInput extends LibraryTaskInput {
  placement: LibraryPlacement;
  expected: Pick<Resources, 'cpus' | 'memoryMiB'>;
}

/**
 * What every content library activity binds: the agent's datastore, its vCenter, the keys it trusts, and
 * whether the verified copy stays in the datastore after an import (VMHUB_KEEP_STAGING=1).
 */
export function libraryContext({
  config,
  sddc,
  env = process.env,
  trusted = loadTrustedKeys(config.trustedKeys),
}: ContentLibraryDeps) {
  const keepStaging = env.VMHUB_KEEP_STAGING === '1';
  return { sddc, trusted, keepStaging, root: datastoreRoot(config, sddc), vcenter: vcenterTask(sddc, env) };
}

export function createContentLibraryActivities(deps: ContentLibraryDeps) {
  const { sddc, trusted, keepStaging, root, vcenter } = libraryContext(deps);

  return {
    /** Whether the library already holds the image: a redeploy then needs no download. */
    async findLibraryItem(input: LibraryTaskInput): Promise<FindItemOutput> {
      return withVcenter(vcenter, input, async (conn, ref, signal) => {
        const found = await findItem(conn, ref, signedDigests(ref, input.envelope, trusted)?.members, signal);
        if (found.problems)
          log.warn('library item not counted present', { item: found.target?.itemName, problems: found.problems });
        return found;
      });
    },

    /** Removes the version's library item, for a retire; an item already gone is no error. */
    async removeLibraryItem(input: LibraryTaskInput): Promise<{ removed: LibraryPlacement | null }> {
      return withVcenter(vcenter, input, async (conn, ref, signal) => {
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
      return withVcenter(vcenter, input, async (conn, ref, signal) => {
        const paths = await openDeployment(root, input);
        const { holder } = await lockVersionFiles(paths, 'ImportInProgress');
        let progress: Progress = { bytesDone: 0, bytesTotal: input.sizeBytes };
        let removed = false;
        const onProgress = (p: Progress) => {
          progress = p;
        };
        try {
          return await keepBeating(
            async () => {
              const { result, imported, problems } = await importVerifiedCopy(conn, ref, paths, {
                members: signedDigests(ref, input.envelope, trusted)?.members,
                trusted,
                signal,
                onProgress,
              });
              if (problems)
                log.warn('library item differed from the image; imported again', { item: result.placement.itemName, problems });
              if (imported) {
                log.info('imported into the content library', {
                  item: result.placement.itemName,
                  library: result.placement.library,
                  vcenter: result.placement.vcenter,
                  status: result.status,
                  bytesSent: result.bytesSent,
                  bytesSkipped: result.bytesSkipped,
                  attempt: activityInfo().attempt,
                });
              }
              const copy = await settleVerifiedCopy(root, paths, ref, { keepStaging, holder });
              removed = copy.removed;
              return importOutput(result, copy.path);
            },
            () => heartbeat({ sddc, phase: 'importing', ...progress }),
          );
        } catch (err) {
          if (signal.aborted && cancellationDetails()?.cancelRequested) {
            await discardImport(conn, ref).catch((e: unknown) =>
              log.warn('could not give the cancelled import up', { error: e }),
            );
            log.info('import cancelled; update session cancelled and the half item removed', { sddc });
          }
          throw err;
        } finally {
          await releaseLock(paths.lock, holder);
          if (removed) await removeEmptyDirs(paths.dir);
        }
      });
    },

    /**
     * Deploys a VM from the item, checks its CPUs and memory are the catalog's, and deletes it again:
     * proof the item can be instantiated. A mismatch is final (InstantiateMismatch).
     */
    async instantiateFromLibrary(input: InstantiateInput): Promise<InstantiateCheck> {
      return withVcenter(vcenter, input, async (conn, _ref, signal) => {
        const info = activityInfo();
        const run = info.workflowExecution?.runId.slice(0, 8) ?? 'manual';
        const vmName = `vmhub-check-${input.placement.itemName}-${run}-${info.activityId}`;
        const check = await keepBeating(
          () => checkInstantiates(conn, input.placement, vmName, input.expected, { retry: info.attempt > 1, signal }),
          () => heartbeat({ sddc, phase: 'instantiating' }),
        );
        log.info('instantiated a VM from the library item and removed it', {
          item: input.placement.itemName,
          vm: check.vm,
          cpus: check.cpus,
          memoryMiB: check.memoryMiB,
        });
        return check;
      });
    },
  };
}

export type ContentLibraryActivities = ReturnType<typeof createContentLibraryActivities>;

/** What every content library task runs with: the SDDC it serves, and its vCenter, if it has one. */
export interface VcenterTask {
  sddc: string;
  vcenter: AgentVcenter | undefined;
}

/** The task context of an agent serving `sddc`, with the vCenter its own environment names. */
export function vcenterTask(sddc: string, env: NodeJS.ProcessEnv): VcenterTask {
  return { sddc, vcenter: loadAgentVcenter(env) };
}

/**
 * Checks the task (and `check`, for what a task adds), logs in to the agent's vCenter, runs fn, logs out;
 * failures become what the workflow can act on.
 */
export async function withVcenter<T>(
  task: VcenterTask,
  input: LibraryTaskInput,
  fn: (conn: VcenterConnection, ref: ImageVersion, signal: AbortSignal) => Promise<T>,
  check: () => void = () => undefined,
): Promise<T> {
  const ref: ImageVersion = {
    image: input.image,
    version: input.version,
    format: input.format,
    sha256: input.sha256,
    sizeBytes: input.sizeBytes,
  };
  return withTarget(
    task,
    input.target,
    (conn, signal) => fn(conn, ref, signal),
    () => {
      checkDownloadInput({ ...input, blob: '', sources: [] }, task.sddc);
      check();
    },
  );
}

/** Runs `check`, logs in to the agent's vCenter, runs fn, logs out; failures become what the workflow can act on. */
export async function withTarget<T>(
  task: VcenterTask,
  target: ContentLibraryTarget,
  fn: (conn: VcenterConnection, signal: AbortSignal) => Promise<T>,
  check: () => void = () => undefined,
): Promise<T> {
  const signal = cancellationSignal();
  try {
    check();
    const conn = await connectToTarget(target, task.sddc, task.vcenter, signal);
    try {
      return await fn(conn, signal);
    } finally {
      await conn.close();
    }
  } catch (err) {
    if (signal.aborted) throw signal.reason;
    throw asLibraryFailure(err);
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
