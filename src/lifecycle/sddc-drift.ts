import type { Catalog } from '../catalog/catalog';
import type { ImageVersionRecord } from '../catalog/image-records';
import {
  capDetail,
  MAX_PAGE_BYTES,
  MAX_PAGE_COPIES,
  type CopyToCheck,
  type DriftFinding,
  type PageCursor,
  type SddcPage,
  type SddcToCheck,
} from '../shared/drift-input';
import { VmhubError } from '../shared/errors';

type DriftCatalog = Pick<Catalog, 'sddcs' | 'deployments' | 'versions'>;

/**
 * One page of SDDCs (in name order, from `after` on) with the copies the catalog says each holds: deployed,
 * already present or drifted, of versions still available, each with the digests its bytes must have. A page
 * holds at most `limit` SDDCs, MAX_PAGE_COPIES copies and MAX_PAGE_BYTES of them serialized (at least one
 * copy): an SDDC whose copies do not fit is continued, in `image@version` order, on the next page.
 */
export async function sddcsToCheck(
  catalog: DriftCatalog,
  input: { sddcs?: string[]; after?: PageCursor; limit: number; maxBytes?: number },
): Promise<SddcPage> {
  const registered = (await catalog.sddcs.list()).sort((a, b) => compare(a.name, b.name));
  const unknown = (input.sddcs ?? []).filter((n) => !registered.some((s) => s.name === n));
  if (unknown.length > 0) throw new VmhubError('UnknownSddc', `unknown SDDC ${unknown.join(', ')}`);
  const chosen = input.sddcs ? registered.filter((s) => input.sddcs!.includes(s.name)) : registered;
  const after = input.after;
  const rest = chosen.filter((s) => !after || s.name > after.sddc || (s.name === after.sddc && after.copy !== undefined));
  const candidates = rest.slice(0, input.limit);
  const held = await heldCopies(
    catalog,
    candidates.map((s) => s.name),
  );
  const maxBytes = input.maxBytes ?? MAX_PAGE_BYTES;
  const page: SddcToCheck[] = [];
  let bytes = 0;
  let count = 0;
  for (const s of candidates) {
    const copies = (held.get(s.name) ?? []).filter((c) => s.name !== after?.sddc || key(c) > (after.copy ?? ''));
    const taken: CopyToCheck[] = [];
    for (const c of copies) {
      const size = JSON.stringify(c).length;
      if (count > 0 && (bytes + size > maxBytes || count >= MAX_PAGE_COPIES)) {
        // An SDDC not begun on this page starts the next one whole.
        if (taken.length === 0) return { sddcs: page, next: { sddc: page[page.length - 1].name } };
        page.push({ name: s.name, taskQueue: s.taskQueue, target: s.target, copies: taken });
        return { sddcs: page, next: { sddc: s.name, copy: key(taken[taken.length - 1]) } };
      }
      taken.push(c);
      bytes += size;
      count++;
    }
    page.push({ name: s.name, taskQueue: s.taskQueue, target: s.target, copies: taken });
  }
  return { sddcs: page, next: rest.length > candidates.length ? { sddc: page[page.length - 1].name } : undefined };
}

const compare = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

const key = (c: CopyToCheck) => `${c.image}@${c.version}`;

/** The copies each SDDC holds, in `image@version` order. */
async function heldCopies(catalog: DriftCatalog, names: string[]): Promise<Map<string, CopyToCheck[]>> {
  const versions = new Map<string, CopyToCheck | undefined>();
  const bySddc = new Map<string, CopyToCheck[]>();
  for (const d of await catalog.deployments.heldBy(names)) {
    const k = `${d.image}@${d.version}`;
    if (!versions.has(k)) versions.set(k, toCheck(await catalog.versions.get(d.image, d.version)));
    const copy = versions.get(k);
    if (copy) bySddc.set(d.sddc, [...(bySddc.get(d.sddc) ?? []), copy]);
  }
  for (const copies of bySddc.values()) copies.sort((a, b) => compare(key(a), key(b)));
  return bySddc;
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
    if (await catalog.deployments.markDrifted(key, capDetail(`${f.kind}: ${f.detail}`))) marked++;
  }
  return marked;
}
