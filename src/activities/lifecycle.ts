import fs from 'node:fs';
import path from 'node:path';
import { ApplicationFailure, cancellationSignal, log } from '@temporalio/activity';
import type { Config } from '../config';
import { VmhubError } from '../shared/errors';
import { withFailures } from '../shared/failures';
import { checkReplica, type ReplicaCheck } from '../lifecycle/replica-check';
import { retentionPlan } from '../lifecycle/retention';
import { beginRetire, checkRef, type RetirePlan, type RetireTarget } from '../lifecycle/retire';
import type { SddcCopy, VersionRef } from '../shared/image-version';
import { verifyBytesPerRun, versionsToVerify, type VerifyPage } from '../lifecycle/verify-page';
import { verifyEveryMs } from '../temporal/schedules';
import { markDrifted, sddcsToCheck } from '../lifecycle/sddc-drift';
import type { DriftFinding, PageCursor, SddcPage } from '../shared/drift-input';
import { removeEmptyDirs } from '../datastore/files';
import { datastoreRoot, deploymentPaths } from '../datastore/layout';
import { releaseLock } from '../datastore/locks';
import { checkDownloadInput } from '../deploy/download-request';
import type { PublishDeps } from './publish';
import { blockIndexPath } from '../deploy/block-index';
import { lockVersionFiles } from './agent';
import { ownerOf, thisRun } from './this-run';
import { keepBeating } from './keep-beating';
import type { RunRef } from '../catalog/image-records';
import { envelopeBlobOf } from '../provenance/stored';

export type { ReplicaCheck, RetirePlan, RetireTarget, VerifyPage, VersionRef };

/** A version and the owner its retire claim names (runOwner()); runs started before owners were passed give none. */
export type OwnedRef = VersionRef & { owner?: RunRef };

const refOf = ({ image, version }: OwnedRef): VersionRef => ({ image, version });

/**
 * Control-plane side of the lifecycle (src/lifecycle/): RetireImage's claim, blob removal and tombstone;
 * VerifyReplicas' choice of versions and check of each replica's bytes; ApplyRetention's choice of versions.
 */
export function createLifecycleActivities({ storage, catalog, temporal, config }: PublishDeps) {
  return {
    /**
     * Claims the version for this retire, unless it is retired already; returns what to remove. It beats
     * throughout: at fleet scale listing the holders, the leases and the agents' queues takes a while.
     */
    async beginRetire(input: OwnedRef): Promise<RetirePlan> {
      return withFailures(() =>
        keepBeating(() => beginRetire({ catalog, temporal, topology: storage.topology }, refOf(input), ownerOf(input), log)),
      );
    },

    /** Gives back this run's claim on a version it removed nothing of: the version is available again. */
    async abandonRetire(input: OwnedRef): Promise<void> {
      return withFailures(async () => {
        // A reset run shares its predecessor's owner: the predecessor's late give-back must not undo the new run's retire.
        if (input.owner && (await temporal.isSuperseded(thisRun()))) return;
        await catalog.versions.abandonRetire(input.image, input.version, ownerOf(input));
      });
    },

    /** Deletes the version's blob and its envelope from one storage location; a blob already gone is no error. */
    async removeBlob(input: VersionRef & { location: string; blob: string }): Promise<{ removed: boolean }> {
      return withFailures(async () => {
        checkRef(input);
        const store = storage.store(input.location);
        const removed = await store.deleteIfExists(input.blob, { abortSignal: cancellationSignal() });
        // Its signed provenance goes with it: a signature of bytes that are gone vouches for nothing.
        await store.deleteIfExists(envelopeBlobOf(input.blob), { abortSignal: cancellationSignal() });
        await catalog.replicas.remove(input.image, input.version, input.location);
        return { removed };
      });
    },

    /** Records the removal from one SDDC; a retry by the same owner stays one attempt. */
    async recordRemoval(input: OwnedRef & { sddc: string }): Promise<void> {
      const run = ownerOf(input);
      await catalog.deployments.record({ image: input.image, version: input.version, sddc: input.sddc, status: 'removed', run });
    },

    /** Records the removals from a batch of SDDCs in a few bulk writes; a retry stays one attempt each. */
    async recordRemovals(input: OwnedRef & { sddcs: string[] }): Promise<void> {
      return withFailures(async () => {
        checkRef(input);
        await catalog.deployments.recordRemovals(input.image, input.version, input.sddcs, ownerOf(input));
      });
    },

    /** Leaves the tombstone; VersionConflict when this owner no longer holds the claim. */
    async finishRetire(input: OwnedRef): Promise<void> {
      return withFailures(() => catalog.versions.finishRetire(input.image, input.version, ownerOf(input)));
    },

    /**
     * One page of the available versions to verify (one version, one image's, or all), least recently
     * hashed first; a run over all of them reads at most its share of VMHUB_VERIFY_BYTES_PER_DAY.
     */
    async versionsToVerify(input: { image?: string; version?: string; after?: string; limit: number }): Promise<VerifyPage> {
      return withFailures(() => {
        const budget = input.image === undefined ? verifyBytesPerRun(config.verifyBytesPerDay, verifyEveryMs()) : Infinity;
        return versionsToVerify({ catalog, topology: storage.topology }, input, budget);
      });
    },

    /**
     * Compares one replica's labels with the primary's, and takes it as right only if its bytes were
     * hashed right at its current etag; one that is not is marked stale (with `note`, if given) and its blob deleted.
     * Without a note, one being replicated is left alone (`pending`).
     */
    async checkReplica(input: VersionRef & { location: string; note?: string }): Promise<ReplicaCheck> {
      return withFailures(async () => {
        checkRef(input);
        // The check after a cancel (it has a note) runs once the copies stopped, and settles the replicas
        // they left pending; a VerifyReplicas run (no note) must leave a running copy alone.
        return checkReplica({ storage, catalog }, input, cancellationSignal(), log, { skipPending: input.note === undefined });
      });
    },

    /** Like checkReplica, but reads the replica whole and hashes it (a transfer: it beats while it reads). */
    async verifyReplicaContent(input: VersionRef & { location: string }): Promise<ReplicaCheck> {
      return withFailures(async () => {
        checkRef(input);
        return keepBeating(() =>
          checkReplica({ storage, catalog }, input, cancellationSignal(), log, { hash: true, skipPending: true }),
        );
      });
    },

    /** One page of SDDCs with the copies the catalog says each holds, for VerifySddcs. */
    async sddcsToCheck(input: { sddcs?: string[]; after?: PageCursor; limit: number }): Promise<SddcPage> {
      return withFailures(() => sddcsToCheck(catalog, input));
    },

    /** Marks the deployments VerifySddcs found drifted; returns how many were. */
    async markDrifted(input: { findings: DriftFinding[] }): Promise<number> {
      return withFailures(() => markDrifted(catalog, input.findings));
    },

    /** The versions retention retires now, at most `limit`: half-retired ones first, then those policies name. */
    async retentionPlan(input: { image?: string; limit: number }): Promise<VersionRef[]> {
      return withFailures(() => retentionPlan({ catalog, temporal }, input));
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
  const root = datastoreRoot(config, sddc);
  return {
    async removeDeployedCopy(input: SddcCopy): Promise<{ removed: string[] }> {
      try {
        checkDownloadInput({ ...input, blob: '', sources: [] }, sddc);
        const realRoot = await fs.promises.realpath(root).catch(() => undefined);
        if (!realRoot) return { removed: [] };
        const dir = path.join(realRoot, input.image, input.version);
        const real = await fs.promises.realpath(dir).catch(() => undefined);
        if (real === undefined) return { removed: [] };
        if (real !== dir) throw new VmhubError('InvalidInput', `${dir} is a link; the agent removes only from real directories`);
        const paths = deploymentPaths(dir, input.image, input.version, input.format);
        const { holder } = await lockVersionFiles(paths, 'DownloadInProgress');
        const removed: string[] = [];
        try {
          for (const file of [
            paths.final,
            paths.digest,
            paths.envelope,
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
          // Bookkeeping beside the copy, not part of it.
          await fs.promises.rm(paths.imported, { force: true });
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
