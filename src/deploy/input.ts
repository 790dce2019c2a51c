import { VmhubError } from '../errors';
import { validateImageName, validateSddcName, validateVersion } from '../names';
import type { InstantiateCheck, LibraryPlacement } from '../sddc/target';

/** DeployToSDDCs's input, result and progress (SPEC §4, contract). Plain data: the workflow bundle imports this. */
export interface DeployInput {
  image: string;
  version: string | 'latest';
  sddcs: string[] | 'all';
  /** For content-library SDDCs: deploy a VM from the item, check its CPUs and memory, remove it. */
  instantiate?: boolean;
  /** Deploy a deprecated version even past its end of life. */
  force?: boolean;
}

export type DeployStatus = 'deployed' | 'already-present' | 'skipped' | 'failed';

export interface DeployResultRow {
  sddc: string;
  dataCenter: string;
  status: DeployStatus;
  source: string | null;
  path?: string;
  bytes?: number;
  /** Bytes the agent downloaded, and bytes it copied from an earlier version on its disk (delta deploy). */
  bytesFetched?: number;
  bytesReusedLocally?: number;
  /** The library item the image became, for a content-library SDDC. */
  target?: LibraryPlacement;
  /** The VM the instantiate check made from the item, and removed. */
  instantiated?: InstantiateCheck;
  reason?: string;
}

export interface DeployResult {
  image: string;
  version: string;
  results: DeployResultRow[];
}

export type SddcPhase = 'pending' | 'checking' | 'downloading' | 'verifying' | 'importing' | 'instantiating' | 'done';

export interface SddcProgress {
  sddc: string;
  phase: SddcPhase;
  source: string | null;
  bytesDone: number;
  bytesTotal: number;
  status?: DeployStatus;
  reason?: string;
}

export type DeployProgress = Record<string, SddcProgress>;

export function validateDeployInput(input: unknown): DeployInput {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new VmhubError('InvalidInput', 'DeployToSDDCs input must be a JSON object with image, version and sddcs');
  }
  const i = input as Record<string, unknown>;
  validateImageName(i.image);
  if (i.version !== 'latest') validateVersion(i.version);
  if (i.sddcs !== 'all') {
    if (!Array.isArray(i.sddcs) || i.sddcs.length === 0)
      throw new VmhubError('InvalidInput', 'sddcs must be "all" or a non-empty list of SDDC names');
    i.sddcs.forEach(validateSddcName);
    if (new Set(i.sddcs).size !== i.sddcs.length) throw new VmhubError('InvalidInput', 'sddcs lists an SDDC twice');
  }
  if (i.instantiate !== undefined && typeof i.instantiate !== 'boolean') {
    throw new VmhubError('InvalidInput', 'instantiate must be true or false');
  }
  if (i.force !== undefined && typeof i.force !== 'boolean') throw new VmhubError('InvalidInput', 'force must be true or false');
  return i as unknown as DeployInput;
}

export function deployWorkflowId(image: string, version: string, suffix: string): string {
  return `deploy:${image}:${version}:${suffix}`;
}
