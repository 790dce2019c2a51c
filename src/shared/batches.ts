/**
 * How a deploy to a fleet is split into child workflows: one per data center, or per batch of at most
 * BATCH_SIZE SDDCs of one data center, so no history grows with the fleet and no run has more than
 * BATCH_SIZE activities pending. Plain data: the workflow bundle imports this.
 */
export const BATCH_SIZE = 100;

export interface SddcBatch {
  dataCenter: string;
  sddcs: string[];
}

/** Batches in the order the SDDCs were given, each holding SDDCs of one data center only. */
export function batchesOf(sddcs: readonly { name: string; dataCenter: string }[], size = BATCH_SIZE): SddcBatch[] {
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`batch size ${size} must be a positive whole number`);
  const byDataCenter = new Map<string, string[]>();
  for (const s of sddcs) {
    const names = byDataCenter.get(s.dataCenter) ?? [];
    names.push(s.name);
    byDataCenter.set(s.dataCenter, names);
  }
  const batches: SddcBatch[] = [];
  for (const [dataCenter, names] of byDataCenter) {
    for (let i = 0; i < names.length; i += size) batches.push({ dataCenter, sddcs: names.slice(i, i + size) });
  }
  return batches;
}
