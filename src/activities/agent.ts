import { activityInfo, ApplicationFailure, cancellationDetails, heartbeat, log } from '@temporalio/activity';
import type { Config } from '../config';
import { acquireLock, lockHolder, releaseLock, type LockHolder } from '../datastore/locks';
import { datastoreRoot, discardPartial, openDeployment, type DeploymentPaths } from '../datastore/layout';
import { downloadFromSources, NoSourceDelivered, type DownloadContext } from '../deploy/download';
import {
  checkDownloadInput,
  type DownloadInput,
  type DownloadOutput,
  type DownloadProgress,
  type SourceFailure,
} from '../deploy/download-request';
import { agentOvfPolicy } from '../deploy/ovf-check';
import { loadTrustedKeys, type TrustedKey } from '../provenance/keys';
import { VmhubError } from '../shared/errors';
import type { BlockStores } from '../storage/block-store';
import { keepBeating } from './keep-beating';
import { transferSignal } from './transfer-signal';

export type { DownloadInput, DownloadOutput, SourceFailure } from '../deploy/download-request';

/** An SDDC agent: its activities run on the SDDC's own task queue and write only into its own datastore. */
export interface AgentDeps {
  storage: BlockStores;
  config: Config;
  /** The SDDC this agent serves; it takes downloads for no other. */
  sddc: string;
  /** The signers this agent trusts; read from VMHUB_TRUSTED_KEYS when not given. */
  trusted?: readonly TrustedKey[];
}

/** The lock holder this activity writes into the locks it takes. */
export function activityLockHolder(): LockHolder {
  const info = activityInfo();
  return lockHolder(info.activityId, info.workflowExecution?.workflowId);
}

/**
 * Takes the lock of a version's files on this agent for this activity, or fails retryably (`busy`) naming
 * who holds it: one download, import or removal of a version at a time.
 */
export async function lockVersionFiles(
  paths: DeploymentPaths,
  busy: 'DownloadInProgress' | 'ImportInProgress',
): Promise<{ holder: LockHolder; tookOverFrom?: string }> {
  const holder = activityLockHolder();
  const lock = await acquireLock(paths.lock, holder);
  if (!lock.acquired) {
    const { pid, activityId, workflowId } = lock.holder;
    const message = `${paths.final} is being used by pid ${pid} (activity ${activityId} of ${workflowId ?? 'no workflow'})`;
    // Each type spelled where it is raised, as the error table's check reads them.
    throw busy === 'ImportInProgress'
      ? ApplicationFailure.retryable(message, 'ImportInProgress')
      : ApplicationFailure.retryable(message, 'DownloadInProgress');
  }
  return { holder, tookOverFrom: lock.tookOverFrom };
}

export function createAgentActivities({ storage, config, sddc, trusted = loadTrustedKeys(config.trustedKeys) }: AgentDeps) {
  const root = datastoreRoot(config, sddc);
  return {
    /**
     * Downloads an image into `<datastore>/<image>/<version>/` from the first good source: parallel ranged
     * reads into a partial file, resumed from what is on disk after a crash, then the SHA-256 (and an OVA's
     * manifest and members) checked against the version's signed provenance, read from the same source,
     * before an atomic rename to the final name. A source that is missing, stale, unreachable or yields bad
     * bytes is reported and the next one is tried; an unsigned, untrusted or mismatched version is refused.
     * One download per target at a time; a cancel removes the partial file.
     */
    async downloadImage(input: DownloadInput): Promise<DownloadOutput> {
      const failures: SourceFailure[] = [];
      try {
        checkDownloadInput(input, sddc);
        const paths = await openDeployment(root, input);
        const { holder, tookOverFrom } = await lockVersionFiles(paths, 'DownloadInProgress');
        if (tookOverFrom) log.warn('took over the lock of a download whose agent is gone', { lock: tookOverFrom });
        try {
          return await downloadLocked({ storage, config, sddc, trusted, root }, input, paths, failures);
        } catch (err) {
          const signal = transferSignal(config.transferConcurrency);
          if (!signal.aborted) throw err;
          // Only a cancel the workflow asked for drops the work done: a shutdown or timeout resumes it.
          if (cancellationDetails()?.cancelRequested) {
            await discardPartial(paths);
            log.info('download cancelled; partial file removed', { path: paths.partial });
          }
          // The SDK aborts the signal with the CancelledFailure it expects back.
          throw signal.reason;
        } finally {
          await releaseLock(paths.lock, holder);
        }
      } catch (err) {
        if (err instanceof VmhubError) throw ApplicationFailure.nonRetryable(err.message, err.type, failures);
        throw err;
      }
    },

    /**
     * After a deploy was cancelled while no download attempt ran (between retries, or with the agent
     * down): removes what an earlier attempt left, unless a live download holds the target's lock.
     */
    async discardDownload(input: DownloadInput): Promise<{ removed: boolean }> {
      try {
        checkDownloadInput(input, sddc);
        const paths = await openDeployment(root, input);
        const holder = activityLockHolder();
        const lock = await acquireLock(paths.lock, holder);
        if (!lock.acquired) return { removed: false };
        try {
          await discardPartial(paths);
          return { removed: true };
        } finally {
          await releaseLock(paths.lock, holder);
        }
      } catch (err) {
        if (err instanceof VmhubError) throw ApplicationFailure.nonRetryable(err.message, err.type);
        throw err;
      }
    },
  };
}

/** What a download under the target's lock runs with: the agent's stores, configuration, SDDC, keys and datastore. */
export interface LockedDownloadDeps extends Required<AgentDeps> {
  root: string;
}

/** The download under the target's lock: heartbeats carry its progress, and no source delivering is NoSource. */
export async function downloadLocked(
  { storage, config, sddc, trusted, root }: LockedDownloadDeps,
  input: DownloadInput,
  paths: DeploymentPaths,
  failures: SourceFailure[],
  follow?: DownloadContext['follow'],
): Promise<DownloadOutput> {
  let progress: DownloadProgress | undefined;
  // Beats before the first progress too: a source slow to answer its first request is no dead agent,
  // and a download that timed out there would keep its slot and its lock while its retry is refused.
  const beat = () => heartbeat({ sddc, phase: 'downloading', ...progress });
  const ctx = {
    storage,
    root,
    concurrency: config.transferConcurrency,
    signal: transferSignal(config.transferConcurrency),
    onProgress: (p: DownloadProgress) => {
      progress = p;
      beat();
    },
    log,
    trusted,
    attempt: activityInfo().attempt,
    ovf: await agentOvfPolicy(config.ovf),
    follow,
  };
  try {
    return await keepBeating(() => downloadFromSources(ctx, input, paths, failures), beat);
  } catch (err) {
    if (!(err instanceof NoSourceDelivered)) throw err;
    throw ApplicationFailure.create({
      message: err.message,
      type: 'NoSource',
      nonRetryable: !err.retryable,
      details: [failures],
    });
  }
}

export type AgentActivities = ReturnType<typeof createAgentActivities>;
