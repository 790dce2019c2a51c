import type { DeploymentOutcome } from '../shared/deploy-input';
import type { VersionRef } from '../shared/image-version';
import { withoutUndefined } from './documents';
import type { RunRef } from './image-records';

/** Deployments of image versions to SDDCs and their attempts, as the catalog keeps them. Plain data: no driver. */
/** `drifted`: VerifySddcs found the copy missing, emptied or changed outside vmhub (its `error` says how). */
export type DeploymentStatus = 'deploying' | 'deployed' | 'already-present' | 'skipped' | 'failed' | 'removed' | 'drifted';

export interface DeploymentRecord extends VersionRef, DeploymentOutcome {
  status: DeploymentStatus;
  source?: string;
  error?: string;
  startedAt?: Date;
  updatedAt: Date;
  deployedAt?: Date;
  /** The deploy run that made the latest attempt, when the writer said. */
  run?: RunRef;
  /** When the first attempt kept in the history was made; absent on a record written before attempts were kept. */
  firstAttemptAt?: Date;
  /**
   * Every attempt, oldest first, the last {@link MAX_DEPLOYMENT_ATTEMPTS}; the top-level fields above are
   * the latest one's. Filled in when read (attempts are documents of their own).
   */
  attempts?: DeploymentAttempt[];
  /** The first attempt that deployed the bytes: where they originally came from, kept when older attempts are dropped. */
  origin?: DeploymentAttempt;
}

/** One try of a deploy to one SDDC, as `deployments.record` was told it. */
export interface DeploymentAttempt {
  status: DeploymentStatus;
  /** The storage location (primary or replica) the bytes came from. */
  source?: string;
  /** Why it failed or was skipped. */
  reason?: string;
  at: Date;
  /** The deploy run that made the attempt, when the writer said. */
  run?: RunRef;
}

/** How many attempts a deployment record keeps; older ones are dropped (the origin stays). */
export const MAX_DEPLOYMENT_ATTEMPTS = 20;

/** What `deployments.record` is told: the latest attempt's fields. */
export type DeploymentUpdate = Omit<DeploymentRecord, 'updatedAt' | 'deployedAt' | 'firstAttemptAt' | 'attempts' | 'origin'>;

/** The reason a deploy's row gets when its copy lands after a retire claimed the version. */
export const RETIRED_WHILE_DEPLOYING = 'retired: the version was claimed by a retire while it was being deployed';

/** What an attempt records of a deployment update. */
export function attemptOf(d: Pick<DeploymentRecord, 'status' | 'source' | 'error' | 'run'>, at: Date): DeploymentAttempt {
  return withoutUndefined({ status: d.status, source: d.source, reason: d.error, at, run: d.run });
}

/**
 * Where the bytes on an SDDC originally came from: the storage location of the first attempt that
 * deployed them since the SDDC last held no copy (a removal ends an origin). For a record written before
 * attempts were kept, its own source if it says it deployed.
 */
export function originalSource(record: DeploymentRecord): string | undefined {
  if (record.origin) return record.origin.source;
  const legacy = (record.attempts ?? []).length === 0 && record.status === 'deployed';
  return legacy ? record.source : undefined;
}
