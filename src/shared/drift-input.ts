import { VmhubError } from './errors';
import type { ImageVersion } from './image-version';
import type { SddcTarget } from './sddc-target';
import type { ContentLibraryTarget } from './target-kinds/kind';
import type { Envelope } from '../provenance/dsse';
import type { SignedMember } from '../provenance/statement';
import { validateSddcName } from './names';

/** VerifySddcs' input, result and the agents' drift checks. Plain data: the workflow bundle imports this. */

/** A copy the catalog says an SDDC holds, with what its bytes must be. */
export interface CopyToCheck extends ImageVersion {
  /** The catalog's copy of its signed provenance; the agent checks against nothing else (signedDigests). */
  envelope?: Envelope;
  /** The files its library item must hold: set by the agent from the verified envelope, never taken from the input. */
  members?: SignedMember[];
}

/** An SDDC and the copies the catalog says it holds (deployed, already present, or drifted). */
export interface SddcToCheck {
  name: string;
  taskQueue: string;
  target?: SddcTarget;
  copies: CopyToCheck[];
}

export interface SddcPage {
  sddcs: SddcToCheck[];
  /** Where the next page starts, when more may follow. */
  next?: PageCursor;
}

/**
 * After SDDC `sddc`; with `copy`, the rest of that SDDC's copies (those after `image@version` key `copy`):
 * a page is cut by its size, so an SDDC holding many copies spans several pages.
 */
export interface PageCursor {
  sddc: string;
  copy?: string;
}

/**
 * What a check found of one copy: `missing` (no file, no library item, or an item's file gone), `zero-byte`,
 * `edited` (other bytes or size than the expected digest), `extra-descriptor` / `extra-file` (a library item
 * holding files beyond the image's), or `not-checked` (the agent or the vCenter did not answer: reported,
 * never marked drifted).
 */
export type DriftKind = 'missing' | 'zero-byte' | 'edited' | 'extra-descriptor' | 'extra-file' | 'not-checked';

export interface DriftFinding {
  sddc: string;
  image: string;
  version: string;
  kind: DriftKind;
  detail: string;
  /** Deployed again by the repair and found whole by it. */
  repaired?: boolean;
}

/** What an agent checks: its SDDC's copies, in its datastore or its vCenter's library. */
export interface DriftCheckInput {
  sddc: string;
  library?: ContentLibraryTarget;
  copies: CopyToCheck[];
}

/** The quick check's answer: what it found by listing alone, and the copies whose bytes must be hashed. */
export interface DriftListing {
  findings: DriftFinding[];
  toHash: CopyToCheck[];
}

export interface DriftHashInput extends DriftCheckInput {
  /** Bytes this SDDC hashes this run at most (at least one copy is always hashed). */
  budgetBytes: number;
  /** Where in the list hashing starts: a run a day later starts one copy further, so every copy gets its turn. */
  rotation: number;
}

export interface DriftHashed {
  findings: DriftFinding[];
  hashed: number;
  /** Copies left for a later run by the budget. */
  deferred: number;
  bytesHashed: number;
}

export interface VerifySddcsInput {
  /** Deploy the same version again to the SDDCs found drifted. */
  repair?: boolean;
  /** Only these SDDCs; every registered one when absent. */
  sddcs?: string[];
  /** Bytes each SDDC hashes per run; DEFAULT_HASH_BUDGET when absent. */
  hashBudgetBytes?: number;
  /** Continue-as-new state: where this page starts, and what earlier runs found. */
  after?: PageCursor;
  carried?: VerifySddcsResult;
}

export interface VerifySddcsResult {
  sddcsChecked: number;
  copiesChecked: number;
  copiesHashed: number;
  /** Copies whose bytes this run did not hash (over the budget): a later run does. */
  copiesDeferred: number;
  /** At most MAX_DRIFT_FINDINGS are listed; `findingsTotal` counts every one. */
  findings: DriftFinding[];
  findingsTotal: number;
  repaired: number;
  /** Drifted copies (not `not-checked`) that no repair made whole: every one, listed or not. */
  unrepaired: number;
}

/** 64 GiB a day per SDDC: about 10 minutes of a disk's sequential read. */
export const DEFAULT_HASH_BUDGET = 64 * 1024 ** 3;
export const MAX_DRIFT_FINDINGS = 100;
/**
 * A page's bounds: its SDDCs' copies (each with an envelope of up to 16 KiB) stay well below Temporal's
 * 2 MB payload limit, and so do the findings of so many copies, each detail at most MAX_DETAIL_CHARS.
 */
export const MAX_PAGE_BYTES = 512 * 1024;
export const MAX_PAGE_COPIES = 256;
export const MAX_DETAIL_CHARS = 1024;
/** Findings per markDrifted call. */
export const MARK_CHUNK = 100;

/** A finding's detail cut to MAX_DETAIL_CHARS: it joins problems that may be many. */
export function capDetail(detail: string): string {
  return detail.length <= MAX_DETAIL_CHARS ? detail : `${detail.slice(0, MAX_DETAIL_CHARS - 1)}…`;
}

export function emptyDriftResult(): VerifySddcsResult {
  return {
    sddcsChecked: 0,
    copiesChecked: 0,
    copiesHashed: 0,
    copiesDeferred: 0,
    findings: [],
    findingsTotal: 0,
    repaired: 0,
    unrepaired: 0,
  };
}

export function validateVerifySddcsInput(input: unknown): VerifySddcsInput {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new VmhubError('InvalidInput', 'VerifySddcs input must be a JSON object');
  }
  const i = input as Record<string, unknown>;
  if (i.repair !== undefined && typeof i.repair !== 'boolean')
    throw new VmhubError('InvalidInput', 'repair must be true or false');
  if (i.sddcs !== undefined) {
    if (!Array.isArray(i.sddcs)) throw new VmhubError('InvalidInput', 'sddcs must be a list of SDDC names');
    i.sddcs.forEach((s) => validateSddcName(s));
  }
  const budget = i.hashBudgetBytes;
  if (budget !== undefined && !(Number.isSafeInteger(budget) && (budget as number) >= 0)) {
    throw new VmhubError('InvalidInput', 'hashBudgetBytes must be a whole number of bytes');
  }
  return i as VerifySddcsInput;
}
