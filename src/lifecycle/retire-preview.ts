import type { ImageVersionRecord, VersionStatus } from '../catalog/image-records';
import { VmhubError, type ErrorType } from '../shared/errors';
import type { VersionRef } from '../shared/image-version';
import { describePlacement, describeTarget, libraryOf } from '../shared/sddc-target';
import { libraryItemName } from '../shared/target-kinds/content-library';
import { withoutAgent } from '../deploy/agent-liveness';
import { leasedDeploys } from './deploy-leases';
import {
  checkRef,
  deployRunning,
  holdersOf,
  noAgent,
  notRetirable,
  retiredBy,
  retireTarget,
  type Holder,
  type RetireDeps,
} from './retire';

/** A copy on an SDDC that a retire would have the SDDC's agent remove. */
export interface CopyToRemove {
  sddc: string;
  dataCenter: string;
  /** Where the copy is, for people: a path in the agent's datastore, or a content library's item. */
  where: string;
  /** For a content-library SDDC: the vCenter, the library and the item the agent would delete. */
  library: { vcenter: string; library: string; item: string } | null;
  bytes: number;
}

/** A storage location whose blob a retire would delete. */
export interface BlobToRemove {
  location: string;
  dataCenter: string;
  role: 'primary' | 'replica';
  /** A replica's state in the catalog; null for the primary. */
  replica: string | null;
  blob: string;
  bytes: number;
}

/** What retiring a version would remove, and what would refuse it now; computed without changing anything. */
export interface RetirePreview extends VersionRef {
  status: VersionStatus;
  sizeBytes: number;
  sddcs: CopyToRemove[];
  storage: BlobToRemove[];
  bytes: { sddcs: number; storage: number };
  /** Why a retire started now would be refused (`Type: message`, as the retire would fail); empty when it would go ahead. */
  refusals: string[];
}

/**
 * What RetireImage would remove for `ref`, read from the same places its claim reads (the holders, the
 * deploy leases, the agents' pollers, the version's blob locations), without claiming the version or
 * dropping a stale lease. A retired version has nothing left to remove.
 */
export async function previewRetire(deps: RetireDeps, ref: VersionRef): Promise<RetirePreview> {
  checkRef(ref);
  const record = await deps.catalog.versions.get(ref.image, ref.version);
  if (record?.status !== 'available' && record?.status !== 'retiring' && record?.status !== 'retired') {
    throw notRetirable(ref, record?.status);
  }
  const base = { image: ref.image, version: ref.version, status: record.status, sizeBytes: record.sizeBytes };
  if (record.status === 'retired') return { ...base, sddcs: [], storage: [], bytes: { sddcs: 0, storage: 0 }, refusals: [] };
  const holders = await holdersOf(deps.catalog, ref);
  const sddcs = holders.map((h) => copyOf(h, record));
  const storage = blobsOf(deps, record);
  const sum = (rows: Array<{ bytes: number }>) => rows.reduce((n, r) => n + r.bytes, 0);
  return {
    ...base,
    sddcs,
    storage,
    bytes: { sddcs: sum(sddcs), storage: sum(storage) },
    refusals: await refusals(deps, record, holders),
  };
}

function copyOf({ sddc, deployment }: Holder, record: ImageVersionRecord): CopyToRemove {
  const library = libraryOf(sddc.target);
  const item = deployment.target?.itemName ?? libraryItemName(record.image, record.version);
  return {
    sddc: sddc.name,
    dataCenter: sddc.dataCenter,
    where: describePlacement(deployment) ?? describeTarget(sddc.target),
    library: library ? { vcenter: library.vcenter, library: library.library, item } : null,
    bytes: record.sizeBytes,
  };
}

/** The topology's locations the catalog says hold the blob: the primary, and each replica it lists. */
function blobsOf(deps: RetireDeps, record: ImageVersionRecord): BlobToRemove[] {
  const rows: BlobToRemove[] = [];
  for (const location of deps.topology.storage) {
    const replica = record.replicas.find((r) => r.location === location.id);
    if (location.role === 'replica' && !replica) continue;
    if (location.role === 'primary' && location.id !== record.location.storage) continue;
    rows.push({
      location: location.id,
      dataCenter: location.dataCenter,
      role: location.role,
      replica: replica?.status ?? null,
      blob: record.location.blob,
      bytes: record.sizeBytes,
    });
  }
  return rows;
}

/** A refusal the preview lists, as the error the retire would fail with. */
export function refusalError(refusal: string): VmhubError {
  const at = refusal.indexOf(': ');
  return new VmhubError(refusal.slice(0, at) as ErrorType, refusal.slice(at + 2));
}

async function refusals(deps: RetireDeps, record: ImageVersionRecord, holders: Holder[]): Promise<string[]> {
  const found: VmhubError[] = [];
  const owner = record.status === 'retiring' ? record.retired?.by : undefined;
  if (owner && !(await deps.temporal.isClosed(owner))) found.push(retiredBy(record, owner));
  const running = await leasedDeploys(deps, record, { dropClosed: false });
  if (running.length > 0) found.push(deployRunning(record, running));
  const silent = await withoutAgent(deps.temporal, holders.map(retireTarget));
  if (silent.length > 0) found.push(noAgent(record, silent));
  return found.map((e) => `${e.type}: ${e.message}`);
}
