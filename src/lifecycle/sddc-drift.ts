import type { Catalog } from '../catalog/catalog';
import type { ImageVersionRecord } from '../catalog/image-records';
import type { CopyToCheck, DriftFinding, SddcPage } from '../shared/drift-input';
import { VmhubError } from '../shared/errors';

type DriftCatalog = Pick<Catalog, 'sddcs' | 'deployments' | 'versions'>;

/**
 * One page of SDDCs (in name order, after `after`) with the copies the catalog says each holds: deployed,
 * already present or drifted, of versions still available, each with the digests its bytes must have.
 */
export async function sddcsToCheck(
  catalog: DriftCatalog,
  input: { sddcs?: string[]; after?: string; limit: number },
): Promise<SddcPage> {
  const registered = (await catalog.sddcs.list()).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const unknown = (input.sddcs ?? []).filter((n) => !registered.some((s) => s.name === n));
  if (unknown.length > 0) throw new VmhubError('UnknownSddc', `unknown SDDC ${unknown.join(', ')}`);
  const chosen = input.sddcs ? registered.filter((s) => input.sddcs!.includes(s.name)) : registered;
  const rest = input.after === undefined ? chosen : chosen.filter((s) => s.name > input.after!);
  const page = rest.slice(0, input.limit);
  const versions = new Map<string, CopyToCheck | undefined>();
  const copyOf = async (image: string, version: string): Promise<CopyToCheck | undefined> => {
    const key = `${image}@${version}`;
    if (!versions.has(key)) versions.set(key, toCheck(await catalog.versions.get(image, version)));
    return versions.get(key);
  };
  const bySddc = new Map<string, CopyToCheck[]>();
  for (const d of await catalog.deployments.heldBy(page.map((s) => s.name))) {
    const copy = await copyOf(d.image, d.version);
    if (copy) bySddc.set(d.sddc, [...(bySddc.get(d.sddc) ?? []), copy]);
  }
  return {
    sddcs: page.map((s) => ({ name: s.name, taskQueue: s.taskQueue, target: s.target, copies: bySddc.get(s.name) ?? [] })),
    next: rest.length > page.length ? page[page.length - 1].name : undefined,
  };
}

/** A version's copy to check; none for a version no longer available (a retire removes its copies). */
function toCheck(record: ImageVersionRecord | null): CopyToCheck | undefined {
  if (record?.status !== 'available' || !record.sha256) return undefined;
  const { image, version, format, sizeBytes } = record;
  const envelope = record.provenance?.envelope;
  return { image, version, format, sha256: record.sha256, sizeBytes, ...(envelope ? { envelope } : {}) };
}

/** Marks the deployments of the findings `drifted` (a copy that was not checked stays as it was); how many were. */
export async function markDrifted(catalog: Pick<Catalog, 'deployments'>, findings: DriftFinding[]): Promise<number> {
  let marked = 0;
  for (const f of findings) {
    if (f.kind === 'not-checked') continue;
    const key = { image: f.image, version: f.version, sddc: f.sddc };
    if (await catalog.deployments.markDrifted(key, `${f.kind}: ${f.detail}`)) marked++;
  }
  return marked;
}
