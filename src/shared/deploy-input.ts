import { VmhubError } from './errors';
import {
  validateChannelName,
  validateImageName,
  validateSddcSelection,
  validateVersionRef,
  type LatestRef,
  type SddcSelection,
} from './names';
import { OPERATOR_CHECK_NAME, type GateVerdict } from './health-gate';
import type { InstantiateCheck } from './target-kinds/content-library';
import type { LibraryPlacement } from './target-kinds/kind';

function validateDeployGate(gate: unknown): void {
  if (gate === undefined) return;
  if (typeof gate !== 'object' || gate === null || Array.isArray(gate))
    throw new VmhubError('InvalidInput', 'gate must be an object');
  const g = gate as Record<string, unknown>;
  if (g.instantiate !== undefined && typeof g.instantiate !== 'boolean')
    throw new VmhubError('InvalidInput', 'gate.instantiate must be true or false');
  if (g.operatorCheck !== undefined && (typeof g.operatorCheck !== 'string' || !OPERATOR_CHECK_NAME.test(g.operatorCheck)))
    throw new VmhubError('InvalidInput', 'gate.operatorCheck must name a check of VMHUB_OPERATOR_CHECKS_FILE, e.g. smoke');
  const t = g.guestTimeoutSeconds;
  if (t !== undefined && (typeof t !== 'number' || !Number.isInteger(t) || t < 1 || t > 3600))
    throw new VmhubError('InvalidInput', 'gate.guestTimeoutSeconds must be a whole number from 1 to 3600');
}

/** DeployToSDDCs's input, result and progress (a contract: runs started by other tools depend on it). Plain data: the workflow bundle imports this. */
export interface DeployInput {
  image: string;
  /** A version, or `latest` (the highest available, non-deprecated release) or `latest-pre` (pre-releases counted). */
  version: string | LatestRef;
  sddcs: SddcSelection;
  /** For content-library SDDCs: deploy a VM from the item, check its CPUs and memory, remove it. */
  instantiate?: boolean;
  /** Deploy a deprecated version even past its end of life. */
  force?: boolean;
  /**
   * Deploy nowhere unless every SDDC the version fits has a live agent: the deploy fails NoAgent before
   * any download. Without it, an SDDC whose agent does not poll is `skipped` (`no agent: …`).
   */
  allOrNothing?: boolean;
  /**
   * A rollout's wave: once an SDDC holds the version, its health gate runs (below); only when it passed is the
   * SDDC's item of this channel (`<image>-<channel>`, the same item ID every time) made to hold the version.
   */
  channel?: string;
  gate?: DeployGate;
}

/** The per-SDDC part of a rollout wave's gate. */
export interface DeployGate {
  /** Make a VM from a content-library SDDC's new item, check its hardware, power it on, wait for its guest, remove it. */
  instantiate?: boolean;
  /** A check the control worker's VMHUB_OPERATOR_CHECKS_FILE defines, run while the VM is up. */
  operatorCheck?: string;
  /** How long the guest may take to report running (default 300). */
  guestTimeoutSeconds?: number;
}

/** What an SDDC's channel item became: `current` when it held the version already and nothing moved. */
export interface ChannelItemOutcome {
  channel: string;
  status: 'updated' | 'current';
  placement: LibraryPlacement;
  bytesCopied: number;
}

export type DeployStatus = 'deployed' | 'already-present' | 'skipped' | 'failed';

/** What a deploy to one SDDC left there: a result row's and a catalog deployment record's common fields. */
export interface DeploymentOutcome {
  sddc: string;
  path?: string;
  bytes?: number;
  /** Bytes the agent downloaded, and bytes it copied from an earlier version on its disk (delta deploy). */
  bytesFetched?: number;
  bytesReusedLocally?: number;
  /** The library item the image became, for a content-library SDDC. */
  target?: LibraryPlacement;
  /** The VM the instantiate check made from the item, and removed. */
  instantiated?: InstantiateCheck;
  /** A rollout wave's health gate on this SDDC: each check it ran, the failed one last. */
  gate?: GateVerdict;
  /** The channel item a rollout wave left holding the version. */
  channelItem?: ChannelItemOutcome;
}

export interface DeployResultRow extends DeploymentOutcome {
  dataCenter: string;
  status: DeployStatus;
  source: string | null;
  reason?: string;
}

export interface DeployResult {
  image: string;
  version: string;
  /**
   * A deploy to at most 100 SDDCs lists every SDDC's row; a larger one only the failed and skipped rows,
   * at most 100 of them (reasons cut to 300 characters), so the result stays small whatever the fleet
   * (`vmhub show` and the catalog's deployment records have every row).
   */
  results: DeployResultRow[];
  /** How many SDDCs ended in each status; absent on runs that began before deploys fanned out. */
  counts?: DeployCounts;
  /** Rows `results` leaves out (failed or skipped SDDCs past the first 100), and where to find them. */
  rowsOmitted?: number;
  note?: string;
}

export type DeployCounts = Partial<Record<DeployStatus, number>>;

export type SddcPhase = 'pending' | 'checking' | 'downloading' | 'verifying' | 'importing' | 'instantiating' | 'gating' | 'done';

export interface SddcProgress {
  sddc: string;
  phase: SddcPhase;
  source: string | null;
  bytesDone: number;
  bytesTotal: number;
  status?: DeployStatus;
  reason?: string;
}

/** The progress of one batch of SDDCs (and of runs that began before deploys fanned out): a row per SDDC. */
export type DeployProgress = Record<string, SddcProgress>;

/**
 * The progress of a deploy fanned out to batches: counts of SDDCs that ended, by status, the failed and
 * skipped rows so far, and each batch's child workflow, whose own `progress` has a row per SDDC.
 */
export interface FleetProgress {
  sddcsTotal: number;
  counts: DeployCounts;
  results: DeployResultRow[];
  batches: BatchProgress[];
}

export interface BatchProgress {
  workflowId: string;
  dataCenter: string;
  sddcs: number;
  done: boolean;
}

export function validateDeployInput(input: unknown): DeployInput {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new VmhubError('InvalidInput', 'DeployToSDDCs input must be a JSON object with image, version and sddcs');
  }
  const i = input as Record<string, unknown>;
  validateImageName(i.image);
  validateVersionRef(i.version);
  validateSddcSelection(i.sddcs, 'sddcs');
  if (i.instantiate !== undefined && typeof i.instantiate !== 'boolean') {
    throw new VmhubError('InvalidInput', 'instantiate must be true or false');
  }
  if (i.force !== undefined && typeof i.force !== 'boolean') throw new VmhubError('InvalidInput', 'force must be true or false');
  if (i.allOrNothing !== undefined && typeof i.allOrNothing !== 'boolean') {
    throw new VmhubError('InvalidInput', 'allOrNothing must be true or false');
  }
  if (i.channel !== undefined) validateChannelName(i.channel);
  validateDeployGate(i.gate);
  return i as unknown as DeployInput;
}

export function deployWorkflowId(image: string, version: string, suffix: string): string {
  return `deploy:${image}:${version}:${suffix}`;
}
