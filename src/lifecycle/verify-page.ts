import type { Catalog } from '../catalog/catalog';
import type { ImageVersionRecord } from '../catalog/image-records';
import { VmhubError } from '../shared/errors';
import { validateImageName, validateVersion } from '../shared/names';
import type { Topology } from '../topology/topology';
import type { VersionRef } from '../shared/image-version';

export interface VerifyPage {
  versions: VersionRef[];
  replicas: string[];
  /** Where the next page starts (a cursor only this module reads); absent on the last page. */
  next?: string;
  /** On the last page: versions this run leaves to a later one, as the byte budget is spent. */
  left?: number;
}

const DAY_MS = 24 * 60 * 60 * 1000;

/** What one run of the verify schedule may read: the day's budget shared among the day's runs (or one run's share of several days). */
export function verifyBytesPerRun(bytesPerDay: number, everyMs: number): number {
  return Math.floor((bytesPerDay * everyMs) / DAY_MS);
}

/**
 * Where a run is: when it began (a version hashed since is done), the last version a page listed, in
 * (last hashed, `<image>@<version>`) order, and the bytes it may still read (null: no budget).
 */
interface Cursor {
  startedAt: number;
  lastHashed: number;
  lastKey: string;
  budgetLeft: number | null;
}

/** The `<image>@<version>` key that breaks ties between versions hashed at the same time. */
const pageKey = (r: VersionRef) => `${r.image}@${r.version}`;

function parseCursor(after: string | undefined): Cursor | undefined {
  if (after === undefined || !after.startsWith('{')) return undefined; // none, or a run's from before budgets: start afresh
  const c = JSON.parse(after) as Partial<Cursor>;
  const numbers = [c.startedAt, c.lastHashed, c.budgetLeft ?? 0];
  if (!numbers.every((n) => typeof n === 'number' && !Number.isNaN(n)) || typeof c.lastKey !== 'string') {
    throw new VmhubError('InvalidInput', `not a verify cursor: ${after}`);
  }
  return c as Cursor;
}

/** When every replica location of a version last had its bytes hashed right: the oldest of them, 0 for never. */
function lastHashed(record: ImageVersionRecord, replicas: string[]): number {
  let oldest = Infinity;
  for (const location of replicas) {
    const r = record.replicas.find((x) => x.location === location);
    oldest = Math.min(oldest, r?.status === 'verified' && r.hashedAt ? new Date(r.hashedAt).getTime() : 0);
  }
  return oldest === Infinity ? 0 : oldest;
}

/**
 * One page of the available versions to verify (one version, one image's, or all): those whose replicas
 * were hashed least recently first, as many as fit in what is left of the run's byte budget (a version
 * costs its size once per replica location). A run always takes its first version, so one larger than the
 * budget is still checked, alone. `budget` is per run: Infinity for a run that names an image or version.
 */
export async function versionsToVerify(
  deps: { catalog: Pick<Catalog, 'versions'>; topology: Topology },
  input: { image?: string; version?: string; after?: string; limit: number },
  budget: number,
  now = new Date(),
): Promise<VerifyPage> {
  if (input.image !== undefined) validateImageName(input.image);
  if (input.version !== undefined) validateVersion(input.version);
  const replicas = deps.topology.storage.filter((s) => s.role === 'replica').map((s) => s.id);
  const records = await deps.catalog.versions.list(input.image, {
    status: 'available',
    ...(input.version ? { version: input.version } : {}),
  });
  if (input.image && input.version && records.length === 0) {
    throw new VmhubError('UnknownImage', `${input.image}@${input.version} is not an available version`);
  }
  const cursor = parseCursor(input.after) ?? { startedAt: now.getTime(), lastHashed: -1, lastKey: '', budgetLeft: budget };
  const first = cursor.lastHashed < 0;
  const beyond = (t: number, key: string) => t > cursor.lastHashed || (t === cursor.lastHashed && key > cursor.lastKey);
  const rest = records
    .map((r) => ({
      ref: { image: r.image, version: r.version },
      t: lastHashed(r, replicas),
      cost: r.sizeBytes * replicas.length,
    }))
    .filter((v) => v.t < cursor.startedAt && beyond(v.t, pageKey(v.ref)))
    .sort((a, b) => a.t - b.t || (pageKey(a.ref) < pageKey(b.ref) ? -1 : pageKey(a.ref) > pageKey(b.ref) ? 1 : 0));
  const page: typeof rest = [];
  let budgetLeft = cursor.budgetLeft ?? Infinity;
  for (const v of rest) {
    if (page.length === input.limit || (v.cost > budgetLeft && !(first && page.length === 0))) break;
    page.push(v);
    budgetLeft -= v.cost;
  }
  const last = page[page.length - 1];
  const more = rest.length > page.length && page.length === input.limit;
  const next: Cursor | undefined = more
    ? {
        startedAt: cursor.startedAt,
        lastHashed: last.t,
        lastKey: pageKey(last.ref),
        budgetLeft: Number.isFinite(budgetLeft) ? Math.max(0, budgetLeft) : null,
      }
    : undefined;
  return {
    versions: page.map((v) => v.ref),
    replicas,
    ...(next ? { next: JSON.stringify(next) } : {}),
    ...(!next && rest.length > page.length ? { left: rest.length - page.length } : {}),
  };
}
