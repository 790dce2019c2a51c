import fs from 'node:fs';
import path from 'node:path';
import { activityInfo, ApplicationFailure, cancellationSignal, log } from '@temporalio/activity';
import type { RunRef } from '../catalog/image-records';
import type { Config } from '../config';
import { VmhubError } from '../errors';
import { withFailures } from '../failures';
import { replicaDifference, type BlobState } from '../lifecycle/replica-check';
import { versionsToRetire } from '../lifecycle/retention';
import { validateImageName, validateVersion } from '../names';
import type { SddcTarget } from '../sddc/target';
import { unlessNotFound, type BlockStore } from '../storage/block-store';
import { removeEmptyDirs } from '../datastore/files';
import { deploymentPaths } from '../datastore/layout';
import { acquireLock, lockHolder, releaseLock } from '../datastore/locks';
import { checkDownloadInput, type ImageToDeploy } from '../deploy/download-request';
import type { PublishDeps } from './publish';
import { blockIndexPath } from '../deploy/block-index';
import { AGENT_ALIVE_MS } from './deploy';

export interface VersionRef {
  image: string;
  version: string;
}

/** An SDDC that holds (or may hold) a copy of the version being retired. */
export interface RetireTarget {
  sddc: string;
  taskQueue: string;
  target?: SddcTarget;
}

export type RetirePlan =
  | { state: 'retired' }
  | (Omit<ImageToDeploy, 'blob'> & {
      state: 'retiring';
      /** `retiring`: this run took the retire over from a closed run, which may have removed copies already. */
      previous?: 'available' | 'retiring';
      blob: string;
      locations: string[];
      sddcs: RetireTarget[];
    });

/** What an agent needs to find its copy of a version: the name decides the paths, the digest which item is ours. */
export type DeployedCopy = Omit<ImageToDeploy, 'blob'> & { sddc: string };

export interface ReplicaCheck {
  location: string;
  /** `gone`: the version stopped being available (retired, say) since the page was listed. */
  status: 'verified' | 'stale' | 'gone';
  reason?: string;
}

export interface VerifyPage {
  versions: VersionRef[];
  replicas: string[];
  /** Where the next page starts; absent on the last page. */
  next?: string;
}

function thisRun(): RunRef {
  const run = activityInfo().workflowExecution;
  if (!run) throw new Error('a lifecycle activity runs only inside a workflow');
  return { workflowId: run.workflowId, runId: run.runId };
}

function notRetirable(ref: VersionRef, status: string | undefined): VmhubError {
  return new VmhubError(
    'UnknownImage',
    `${ref.image}@${ref.version} is ${status ?? 'not in the catalog'}; only an available version can be retired`,
  );
}

function checkRef(ref: VersionRef): void {
  validateImageName(ref.image);
  validateVersion(ref.version);
}

/** The blob's committed block IDs, size and SHA-256 metadata; undefined when there is no blob. */
async function blobState(store: BlockStore, blob: string, signal: AbortSignal): Promise<BlobState | undefined> {
  const props = await unlessNotFound(store.getProperties(blob, { abortSignal: signal }));
  if (!props) return undefined;
  const list = await store.committedBlocks(blob, { abortSignal: signal });
  return {
    blockIds: list.map((b) => b.name),
    sizeBytes: props.contentLength,
    sha256: props.metadata.sha256,
  };
}

/** The `<image>@<version>` key verify pages are ordered and resumed by. */
const pageKey = (r: VersionRef) => `${r.image}@${r.version}`;

/**
 * Control-plane side of the lifecycle: RetireImage's claim, blob removal and tombstone; VerifyReplicas'
 * comparison of each replica with the primary; ApplyRetention's choice of versions.
 */
export function createLifecycleActivities({ storage, catalog, temporal }: PublishDeps) {
  /** The registered SDDCs that hold (or may hold) a copy of the version. */
  async function holders(ref: VersionRef): Promise<RetireTarget[]> {
    const registered = new Map((await catalog.sddcs.list()).map((s) => [s.name, s]));
    const targets: RetireTarget[] = [];
    for (const d of await catalog.deployments.of(ref.image, ref.version)) {
      const sddc = registered.get(d.sddc);
      // A skipped attempt may follow one that left a copy (its origin says so); else it never had one.
      if (d.status === 'removed' || (d.status === 'skipped' && !d.origin) || !sddc) continue;
      targets.push({ sddc: sddc.name, taskQueue: sddc.taskQueue, target: sddc.target });
    }
    return targets;
  }

  return {
    /**
     * Claims the version for this retire (status `retiring`: no deploy plans it from now on), unless it is
     * retired already. Refused, leaving nothing claimed, with NoAgent while an SDDC holding a copy has no
     * live agent, and with VersionConflict while another open run holds the claim (a closed run's claim
     * is taken over); refused with DeployRunning while a deploy of it runs. Returns what to remove.
     */
    async beginRetire(input: VersionRef): Promise<RetirePlan> {
      return withFailures(async () => {
        checkRef(input);
        const { image, version } = input;
        const before = await catalog.versions.get(image, version);
        if (before?.status === 'retired') return { state: 'retired' };
        if (before?.status !== 'available' && before?.status !== 'retiring') throw notRetirable(input, before?.status);
        const silent: RetireTarget[] = [];
        for (const t of await holders(input)) {
          if ((await temporal.recentPollers(t.taskQueue, 'activity', AGENT_ALIVE_MS)) === 0) silent.push(t);
        }
        if (silent.length > 0) {
          throw new VmhubError(
            'NoAgent',
            `no agent has polled for ${silent.map((t) => `${t.sddc} (task queue ${t.taskQueue})`).join(', ')} in the last five minutes, and ${image}@${version} has a copy there; start ${silent.map((t) => `\`npm run agent -- ${t.sddc}\``).join(', ')} and retire again (or, for an SDDC gone for good, \`vmhub sddc remove <sddc>\`)`,
          );
        }
        const me = thisRun();
        let claim = await catalog.versions.beginRetire(image, version, me);
        if (claim.state === 'owned') {
          if (claim.owner && !(await temporal.isClosed(claim.owner))) {
            throw new VmhubError(
              'VersionConflict',
              `${image}@${version} is being retired by workflow ${claim.owner.workflowId}; wait for it or cancel it`,
            );
          }
          log.info('taking over a retire left by a closed run', { image, version, previous: claim.owner });
          if (!(await catalog.versions.takeOverRetire(image, version, me, claim.owner))) {
            throw new Error(`the retire claim on ${image}@${version} changed while being taken over; retrying`);
          }
          claim = await catalog.versions.beginRetire(image, version, me);
        }
        if (claim.state === 'retired') return { state: 'retired' };
        if (claim.state === 'unavailable') throw notRetirable(input, claim.status);
        if (claim.state !== 'claimed') throw new Error(`${image}@${version} changed while being claimed; retrying`);
        const { record, previous } = claim;
        const running = await temporal.runningDeploys(image, version);
        if (running.length > 0) {
          // Claimed first, then checked: a deploy starting now no longer plans the version, one running is seen.
          if (previous === 'available') await catalog.versions.abandonRetire(image, version, me);
          throw new VmhubError(
            'DeployRunning',
            `${image}@${version} is being deployed by ${running.join(', ')}; retire it once that has ended`,
          );
        }
        return {
          state: 'retiring',
          previous,
          image,
          version,
          format: record.format,
          sha256: record.sha256 ?? '',
          sizeBytes: record.sizeBytes,
          blob: record.location.blob,
          locations: storage.topology.storage.map((s) => s.id),
          // Listed again once claimed: a deploy that recorded its copy meanwhile is included.
          sddcs: await holders(input),
        };
      });
    },

    /** Gives back this run's claim on a version it removed nothing of: the version is available again. */
    async abandonRetire(input: VersionRef): Promise<void> {
      await catalog.versions.abandonRetire(input.image, input.version, thisRun());
    },

    /** Deletes the version's blob from one storage location; a blob already gone is no error. */
    async removeBlob(input: VersionRef & { location: string; blob: string }): Promise<{ removed: boolean }> {
      return withFailures(async () => {
        checkRef(input);
        const removed = await storage.store(input.location).deleteIfExists(input.blob, { abortSignal: cancellationSignal() });
        await catalog.replicas.remove(input.image, input.version, input.location);
        return { removed };
      });
    },

    async recordRemoval(input: VersionRef & { sddc: string }): Promise<void> {
      await catalog.deployments.record({ image: input.image, version: input.version, sddc: input.sddc, status: 'removed' });
    },

    async finishRetire(input: VersionRef): Promise<void> {
      await catalog.versions.finishRetire(input.image, input.version, thisRun());
    },

    /** One page of the available versions to verify (one version, one image's, or all), in `<image>@<version>` order. */
    async versionsToVerify(input: { image?: string; version?: string; after?: string; limit: number }): Promise<VerifyPage> {
      return withFailures(async () => {
        if (input.image !== undefined) validateImageName(input.image);
        if (input.version !== undefined) validateVersion(input.version);
        const all = (
          await catalog.versions.list(input.image, { status: 'available', ...(input.version ? { version: input.version } : {}) })
        )
          .map(({ image, version }) => ({ image, version }))
          .sort((a, b) => (pageKey(a) < pageKey(b) ? -1 : pageKey(a) > pageKey(b) ? 1 : 0));
        if (input.image && input.version && all.length === 0) {
          throw new VmhubError('UnknownImage', `${input.image}@${input.version} is not an available version`);
        }
        const rest = input.after === undefined ? all : all.filter((v) => pageKey(v) > input.after!);
        const versions = rest.slice(0, input.limit);
        return {
          versions,
          replicas: storage.topology.storage.filter((s) => s.role === 'replica').map((s) => s.id),
          next: rest.length > versions.length ? pageKey(versions[versions.length - 1]) : undefined,
        };
      });
    },

    /**
     * Compares one replica with the primary: committed block list, size and SHA-256 metadata. A replica
     * that differs is marked `stale` and its blob deleted, so replicateImage writes it afresh rather than
     * trusting metadata the differing copy may carry.
     */
    async checkReplica(input: VersionRef & { location: string }): Promise<ReplicaCheck> {
      return withFailures(async () => {
        checkRef(input);
        const record = await catalog.versions.get(input.image, input.version);
        if (record?.status !== 'available') return { location: input.location, status: 'gone' };
        const signal = cancellationSignal();
        const blobName = record.location.blob;
        const primary = await blobState(storage.store(record.location.storage), blobName, signal);
        if (!primary) {
          throw new VmhubError('StorageMismatch', `the primary blob of ${input.image}@${input.version} is missing`);
        }
        const replicaStore = storage.store(input.location);
        const replica = await blobState(replicaStore, blobName, signal);
        const reason = replicaDifference({ ...primary, sha256: record.sha256 }, replica);
        if (reason === undefined) {
          const etag = (await replicaStore.getProperties(blobName, { abortSignal: signal })).etag;
          const kept = await catalog.versions.setReplica(input.image, input.version, {
            location: input.location,
            status: 'verified',
            etag,
            sha256: record.sha256,
            verifiedAt: new Date(),
          });
          return { location: input.location, status: kept ? 'verified' : 'gone' };
        }
        log.warn('replica differs from the primary', {
          image: input.image,
          version: input.version,
          location: input.location,
          reason,
        });
        // Retired since it was read: the retire removes the blob, and nothing is to be replicated again.
        if (
          !(await catalog.versions.setReplica(input.image, input.version, { location: input.location, status: 'stale', reason }))
        ) {
          return { location: input.location, status: 'gone' };
        }
        await replicaStore.deleteIfExists(blobName, { abortSignal: signal });
        return { location: input.location, status: 'stale', reason };
      });
    },

    /**
     * The versions retention retires now, at most `limit`: first those left `retiring` by a retire that
     * crashed or was cancelled midway (with a policy or not: their copies may be half gone, and only
     * finishing the retire ends that), then those under one image's policy or every policy.
     */
    async retentionPlan(input: { image?: string; limit: number }): Promise<VersionRef[]> {
      return withFailures(async () => {
        if (input.image !== undefined) validateImageName(input.image);
        const policies = input.image
          ? [await catalog.retention.get(input.image)].filter((p) => p !== null)
          : await catalog.retention.list();
        const plan: VersionRef[] = [];
        for (const v of await catalog.versions.list(input.image, { status: 'retiring' })) {
          // A retire still running finishes its own version; a retention run would only conflict with it.
          if (v.retired?.by && !(await temporal.isClosed(v.retired.by))) continue;
          plan.push({ image: v.image, version: v.version });
        }
        for (const policy of policies) {
          const versions = await catalog.versions.list(policy.image);
          const held = await catalog.deployments.heldVersions(policy.image);
          for (const version of versionsToRetire(versions, policy.keep, held)) plan.push({ image: policy.image, version });
        }
        return plan.slice(0, input.limit);
      });
    },
  };
}

export type LifecycleActivities = ReturnType<typeof createLifecycleActivities>;

/**
 * The agent's part of a retire: removes its copy of a version from `<datastore>/<image>/<version>/` (the
 * image, its .sha256, and any partial download with its state), under the download's lock, then the
 * folders if empty. Nothing there is no error, so a retried removal is harmless.
 */
export function createAgentLifecycleActivities({ config, sddc }: { config: Config; sddc: string }) {
  const root = config.datastore ?? path.join(config.dataDir, 'sddc', sddc);
  return {
    async removeDeployedCopy(input: DeployedCopy): Promise<{ removed: string[] }> {
      try {
        checkDownloadInput({ ...input, blob: '', sources: [] }, sddc);
        const realRoot = await fs.promises.realpath(root).catch(() => undefined);
        if (!realRoot) return { removed: [] };
        const dir = path.join(realRoot, input.image, input.version);
        const real = await fs.promises.realpath(dir).catch(() => undefined);
        if (real === undefined) return { removed: [] };
        if (real !== dir) throw new VmhubError('InvalidInput', `${dir} is a link; the agent removes only from real directories`);
        const paths = deploymentPaths(dir, input.image, input.version, input.format);
        const holder = lockHolder(activityInfo().activityId, activityInfo().workflowExecution?.workflowId);
        const lock = await acquireLock(paths.lock, holder);
        if (!lock.acquired) {
          throw ApplicationFailure.retryable(
            `${paths.final} is being downloaded by pid ${lock.holder.pid}`,
            'DownloadInProgress',
          );
        }
        const removed: string[] = [];
        try {
          for (const file of [
            paths.final,
            paths.digest,
            blockIndexPath(paths.final),
            paths.partial,
            paths.state,
            paths.stateNext,
          ]) {
            if (
              await fs.promises.rm(file).then(
                () => true,
                (err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? false : Promise.reject(err)),
              )
            )
              removed.push(file);
          }
        } finally {
          await releaseLock(paths.lock, holder);
        }
        await removeEmptyDirs(dir);
        log.info('removed a retired version', { image: input.image, version: input.version, removed });
        return { removed };
      } catch (err) {
        if (err instanceof VmhubError) throw ApplicationFailure.nonRetryable(err.message, err.type);
        throw err;
      }
    },
  };
}

export type AgentLifecycleActivities = ReturnType<typeof createAgentLifecycleActivities>;
