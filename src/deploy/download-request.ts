import { VmhubError } from '../shared/errors';
import { IMAGE_FORMATS } from '../shared/image-format';
import type { SddcCopy } from '../shared/image-version';
import { validateImageName, validateSddcName, validateVersion } from '../shared/names';
import type { SourceCandidate } from './placement';

/** What to deploy, and the blob to fetch it from; where it goes on disk is the agent's own business (VMHUB_DATASTORE). */
export interface DownloadInput extends SddcCopy {
  blob: string;
  sources: SourceCandidate[];
}

export interface SourceFailure {
  location: string;
  /** `unreachable` is transient: the source is skipped for this download but not marked in the catalog. */
  status: 'stale' | 'failed' | 'unreachable';
  reason: string;
}

export interface DownloadOutput {
  status: 'deployed' | 'already-present';
  source: string | null;
  path: string;
  bytes: number;
  /** Bytes fetched by this attempt, and bytes found already on disk from an earlier one. */
  bytesFetched: number;
  bytesResumed: number;
  /** Bytes copied from an earlier version on disk (delta deploy); agents from before delta deploys leave it out. */
  bytesReusedLocally?: number;
  sourceFailures: SourceFailure[];
}

/** Checks a download request again on the agent: it decides paths, so it trusts no name it did not check. */
export function checkDownloadInput(input: DownloadInput, sddc: string): void {
  validateSddcName(input.sddc);
  if (input.sddc !== sddc) throw new VmhubError('InvalidInput', `this agent serves SDDC ${sddc}, not ${input.sddc}`);
  validateImageName(input.image);
  validateVersion(input.version);
  if (!IMAGE_FORMATS.includes(input.format)) {
    throw new VmhubError('InvalidInput', `format ${JSON.stringify(input.format)} is not one of ${IMAGE_FORMATS.join(', ')}`);
  }
  if (typeof input.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(input.sha256)) {
    throw new VmhubError('InvalidInput', `sha256 ${JSON.stringify(input.sha256)} is not 64 lowercase hex digits`);
  }
  if (!Number.isSafeInteger(input.sizeBytes) || input.sizeBytes < 0) {
    throw new VmhubError('InvalidInput', `sizeBytes ${JSON.stringify(input.sizeBytes)} is not a byte count`);
  }
}

/** A source that cannot deliver the bytes: the download reports it and tries the next one. */
export class SourceProblem extends Error {
  constructor(
    readonly status: SourceFailure['status'],
    message: string,
  ) {
    super(message);
  }
}

/** A file partly copied from an earlier version failed the SHA-256: no verdict on the source yet. */
export class LocalCopyMismatch extends Error {}

/** The download's log: the steps say what they did without knowing who runs them. */
export interface StepLog {
  info(message: string, meta?: Record<string, unknown>): void;
  warn(message: string, meta?: Record<string, unknown>): void;
}

/** How far a download from one source has got, as its heartbeat reports it. */
export interface DownloadProgress {
  location: string;
  bytesDone: number;
  bytesTotal: number;
}
