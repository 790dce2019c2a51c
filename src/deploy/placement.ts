import type { ImageVersionRecord, ReplicaRecord } from '../catalog/image-records';
import type { Resources } from '../images/ovf/metadata';
import type { Capacity, StorageLocation } from '../topology/topology';
import { plural } from '../shared/units';

/** Decisions of a deployment, as plain functions: does a version fit an SDDC, and where should it read from. */

const GiB = 2 ** 30;

/** What a version needs of an SDDC: an OVF's resources; an ISO needs nothing. */
export function resourcesOf(record: Pick<ImageVersionRecord, 'metadata'>): Resources | undefined {
  return record.metadata && 'resources' in record.metadata ? record.metadata.resources : undefined;
}

export function capacityShortfall(needs: Resources | undefined, capacity: Capacity): string | undefined {
  if (!needs) return undefined;
  const short: string[] = [];
  if (needs.cpus > capacity.cpus) short.push(`${plural(needs.cpus, 'CPU')} needed, ${capacity.cpus} available`);
  if (needs.memoryMiB > capacity.memoryMiB)
    short.push(`${needs.memoryMiB} MiB memory needed, ${capacity.memoryMiB} MiB available`);
  if (needs.diskBytes > capacity.diskGiB * GiB) {
    short.push(`${Math.ceil(needs.diskBytes / GiB)} GiB disk needed, ${capacity.diskGiB} GiB available`);
  }
  return short.length > 0 ? short.join('; ') : undefined;
}

export interface SourceCandidate {
  location: string;
  dataCenter: string;
  role: 'primary' | 'replica';
  /** The etag recorded when the replica was verified; a replica whose etag differs now is stale. */
  etag?: string;
}

/**
 * Where an SDDC reads an image from, in order: every verified copy (the primary always holds one) from
 * its own data center outwards (`dataCenterOrder`); within a data center a replica comes before the
 * primary, which is spared for the data centers that have no copy of their own.
 */
export function sourceOrder(
  locations: StorageLocation[],
  replicas: ReplicaRecord[],
  dataCenterOrder: string[],
): SourceCandidate[] {
  const rank = (dc: string) => {
    const i = dataCenterOrder.indexOf(dc);
    return i === -1 ? dataCenterOrder.length : i;
  };
  const candidates: SourceCandidate[] = [];
  for (const l of locations) {
    if (l.role === 'primary') {
      candidates.push({ location: l.id, dataCenter: l.dataCenter, role: 'primary' });
      continue;
    }
    const verified = replicas.find((r) => r.location === l.id && r.status === 'verified');
    if (verified) candidates.push({ location: l.id, dataCenter: l.dataCenter, role: 'replica', etag: verified.etag });
  }
  return candidates.sort(
    (a, b) =>
      rank(a.dataCenter) - rank(b.dataCenter) ||
      (a.role === b.role ? 0 : a.role === 'replica' ? -1 : 1) ||
      a.location.localeCompare(b.location),
  );
}
