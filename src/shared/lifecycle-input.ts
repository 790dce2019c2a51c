import { VmhubError } from './errors';
import { validateImageName, validateVersion } from './names';

/** The lifecycle workflows' inputs and results. Plain data: the workflow bundle imports this. */
export interface RetireInput {
  image: string;
  version: string;
}

export interface RetireResult {
  image: string;
  version: string;
  /** `already-retired`: an earlier run left the tombstone, and this one had nothing to do. */
  status: 'retired' | 'already-retired';
  /** Per SDDC, what its agent removed: files from its datastore, and the library item's ID. */
  sddcs: Array<{ sddc: string; files: string[]; libraryItem: string | null }>;
  /** Storage locations whose blob this run deleted. */
  blobsRemoved: string[];
}

export interface VerifyInput {
  image?: string;
  version?: string;
  /** Continue-as-new state: where the next page starts (versionsToVerify's cursor), and what earlier runs found. */
  after?: string;
  carried?: VerifyResult;
}

export interface ReplicaFinding {
  image: string;
  version: string;
  location: string;
  reason: string;
  /** Replicated again and verified; false when that failed too (the catalog then says stale or failed). */
  repaired: boolean;
}

export interface VerifyResult {
  versionsChecked: number;
  replicasChecked: number;
  /** Replicas that differed from the primary; at most MAX_FINDINGS are listed, `findingsTotal` counts all. */
  findings: ReplicaFinding[];
  findingsTotal: number;
  /** Versions left for a later run, as this run's byte budget was spent. */
  versionsLeft?: number;
}

/**
 * ApplyRetention retires per run at most this many versions, a few at a time: the history stays bounded,
 * and what is left (or failed, e.g. while a deploy of it ran) is taken up by the next scheduled run.
 */
export const RETENTION_MAX_RETIRES = 100;

export interface RetentionInput {
  /** One image's policy; every policy when absent. */
  image?: string;
}

export interface RetentionResult {
  retired: string[];
  failed: Array<{ ref: string; reason: string }>;
}

export function validateRetireInput(input: unknown): RetireInput {
  const i = requireObject(input, 'RetireImage input must be a JSON object with image and version');
  validateImageName(i.image);
  validateVersion(i.version);
  return { image: i.image as string, version: i.version as string };
}

export function validateVerifyInput(input: unknown): VerifyInput {
  const i = requireObject(input ?? {}, 'VerifyReplicas input must be a JSON object');
  if (i.image !== undefined) validateImageName(i.image);
  if (i.version !== undefined) {
    if (i.image === undefined) throw new VmhubError('InvalidInput', 'a version to verify needs its image');
    validateVersion(i.version);
  }
  return i as VerifyInput;
}

export function validateRetentionInput(input: unknown): RetentionInput {
  const i = requireObject(input ?? {}, 'ApplyRetention input must be a JSON object');
  if (i.image !== undefined) validateImageName(i.image);
  return i as RetentionInput;
}

function requireObject(input: unknown, message: string): Record<string, unknown> {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new VmhubError('InvalidInput', message);
  return input as Record<string, unknown>;
}

/** One retire per version at a time: a second start attaches to the running one. */
export function retireWorkflowId(image: string, version: string): string {
  return `retire:${image}:${version}`;
}
