import fs from 'node:fs';
import path from 'node:path';
import { O_RDONLY, openNoFollow } from '../datastore/files';
import { deploymentPaths } from '../datastore/layout';
import { compareItemFiles } from '../sddc/content-library';
import { verifyItem } from '../sddc/item-check';
import { lookupItem, type VcenterConnection } from '../sddc/library-import';
import {
  capDetail,
  type CopyToCheck,
  type DriftFinding,
  type DriftHashed,
  type DriftKind,
  type DriftListing,
} from '../shared/drift-input';
import { isVmhubError } from '../shared/errors';
import type { TrustedKey } from '../provenance/keys';
import { hashPool } from '../storage/hashing';
import { signedDigests } from './expected-members';
import { formatBytes } from '../shared/units';

/**
 * An agent's drift checks of the copies the catalog says its SDDC holds, in two steps: a listing (cheap:
 * a stat of each datastore copy, the file list of each library item) that finds what is missing, empty,
 * resized, reported with another SHA-256, or extra; then a hash of the rest against the expected SHA-256,
 * within a byte budget. The `.sha256` sidecar is never read: it is a label anyone with the datastore can write.
 */
const finding = (sddc: string, c: CopyToCheck, kind: DriftKind, detail: string): DriftFinding => ({
  sddc,
  image: c.image,
  version: c.version,
  kind,
  detail: capDetail(detail),
});

/**
 * The copies with the digests their envelopes give once verified with this agent's keys, replacing whatever
 * digests the input named; a copy without an envelope, or whose envelope does not verify, is not checked.
 */
export function signedCopies(
  sddc: string,
  copies: CopyToCheck[],
  trusted: readonly TrustedKey[],
): { copies: CopyToCheck[]; findings: DriftFinding[] } {
  const out: { copies: CopyToCheck[]; findings: DriftFinding[] } = { copies: [], findings: [] };
  for (const c of copies) {
    try {
      const signed = signedDigests(c, c.envelope, trusted);
      if (signed) out.copies.push({ ...c, ...signed });
      else out.findings.push(finding(sddc, c, 'not-checked', 'the catalog holds no signed provenance of it to check against'));
    } catch (err) {
      if (!isVmhubError(err)) throw err;
      out.findings.push(finding(sddc, c, 'not-checked', `${err.type}: ${err.message}`));
    }
  }
  return out;
}

function copyPath(root: string, c: CopyToCheck): string {
  return deploymentPaths(path.join(root, c.image, c.version), c.image, c.version, c.format).final;
}

/** Each datastore copy by its stat: missing, empty or resized is found here; the others are hashed next. */
export async function listDatastoreDrift(root: string, sddc: string, copies: CopyToCheck[]): Promise<DriftListing> {
  const out: DriftListing = { findings: [], toHash: [] };
  for (const c of copies) {
    const file = copyPath(root, c);
    const stat = await fs.promises.lstat(file).catch(() => undefined);
    if (!stat?.isFile()) out.findings.push(finding(sddc, c, 'missing', `${file} is gone`));
    else if (stat.size === 0) out.findings.push(finding(sddc, c, 'zero-byte', `${file} holds 0 bytes, not ${c.sizeBytes}`));
    else if (stat.size !== c.sizeBytes)
      out.findings.push(finding(sddc, c, 'edited', `${file} holds ${stat.size} bytes, not ${c.sizeBytes}`));
    else out.toHash.push(c);
  }
  return out;
}

/** Bytes per push to the hashing thread: progress and a cancel are seen between pushes. */
const HASH_STEP = 64 * 1024 * 1024;

/**
 * The datastore copy hashed against its expected SHA-256 (never through a link) on the hashing threads,
 * which read the file themselves: the event loop stays free. A finding when it differs.
 */
export async function hashDatastoreCopy(
  root: string,
  sddc: string,
  c: CopyToCheck,
  options: { signal?: AbortSignal; onBytes?: (n: number) => void },
): Promise<DriftFinding | undefined> {
  const file = copyPath(root, c);
  const handle = await openNoFollow(file, O_RDONLY).catch(() => undefined);
  if (!handle) return finding(sddc, c, 'missing', `${file} is gone`);
  let sha: string;
  let size: number;
  try {
    size = (await handle.stat()).size;
    const stream = await hashPool().openStream();
    try {
      for (let at = 0; at < size; at += HASH_STEP) {
        options.signal?.throwIfAborted();
        await stream.pushFile(handle.fd, at, Math.min(HASH_STEP, size - at));
        options.onBytes?.(Math.min(at + HASH_STEP, size));
      }
      sha = (await stream.finish()).sha256;
    } finally {
      // Resolves once the thread has let go of the file; after finish it does nothing.
      await stream.close();
    }
  } finally {
    await handle.close().catch(() => undefined);
  }
  if (size === 0) return finding(sddc, c, 'zero-byte', `${file} holds 0 bytes, not ${c.sizeBytes}`);
  if (size !== c.sizeBytes || sha !== c.sha256) {
    return finding(sddc, c, 'edited', `${file} has SHA-256 ${sha} (${size} bytes), not ${c.sha256} (edited outside vmhub)`);
  }
  return undefined;
}

function libraryKind(problems: string[], extra: string[]): DriftKind {
  if (extra.some((n) => n.toLowerCase().endsWith('.ovf'))) return 'extra-descriptor';
  if (extra.length > 0) return 'extra-file';
  return problems.every((p) => p.endsWith(' is missing')) ? 'missing' : 'edited';
}

/** Each library item by its file list: gone, half made, a file missing, resized, reported with another SHA-256, or extra. */
export async function listLibraryDrift(
  conn: VcenterConnection,
  sddc: string,
  copies: CopyToCheck[],
  signal?: AbortSignal,
): Promise<DriftListing> {
  const out: DriftListing = { findings: [], toHash: [] };
  for (const c of copies) {
    const found = await lookupItem(conn, c, signal).catch((err: unknown) => {
      if (isVmhubError(err)) return err;
      throw err;
    });
    const where = `item ${c.image}-${c.version} of library ${conn.target.library}`;
    if (found instanceof Error) out.findings.push(finding(sddc, c, 'edited', found.message));
    else if (found.state === 'absent') out.findings.push(finding(sddc, c, 'missing', `${where} is gone`));
    else if (found.state === 'importing')
      out.findings.push(finding(sddc, c, 'missing', `${where} is not whole: its import never finished`));
    else if (!c.members) out.findings.push(finding(sddc, c, 'not-checked', `no expected SHA-256 of every file of ${where}`));
    else {
      const cmp = compareItemFiles(c.members, await conn.library.itemFiles(found.item!.id, { signal }));
      const problems = [...cmp.problems, ...cmp.extra.map((n) => `${n} is extra`)];
      if (problems.length > 0)
        out.findings.push(finding(sddc, c, libraryKind(cmp.problems, cmp.extra), `${where}: ${problems.join('; ')}`));
      else if (cmp.unreported.length > 0) out.toHash.push(c);
    }
  }
  return out;
}

/** The item's files read back and hashed against their expected SHA-256; a finding when one differs. */
export async function hashLibraryCopy(
  conn: VcenterConnection,
  sddc: string,
  c: CopyToCheck,
  options: { signal?: AbortSignal; onBytes?: (n: number) => void },
): Promise<DriftFinding | undefined> {
  const found = await lookupItem(conn, c, options.signal);
  if (!found.item) return finding(sddc, c, 'missing', `item ${c.image}-${c.version} is gone`);
  const verdict = await verifyItem(conn.library, found.item.id, c.members ?? [], options);
  if (verdict.present) return undefined;
  return finding(
    sddc,
    c,
    libraryKind(verdict.problems, verdict.extra),
    `item ${found.item.name}: ${verdict.problems.join('; ')}`,
  );
}

/**
 * Hashes one group of the copies: taken in order, each group holds what fits in `budgetBytes` (at least one
 * copy), and a run hashes group `rotation` modulo their number, so every copy gets its turn within as many
 * runs as there are groups, whatever their sizes.
 */
export async function hashWithinBudget(
  copies: CopyToCheck[],
  budgetBytes: number,
  rotation: number,
  hashOne: (c: CopyToCheck) => Promise<DriftFinding | undefined>,
): Promise<DriftHashed> {
  const out: DriftHashed = { findings: [], hashed: 0, deferred: 0, bytesHashed: 0 };
  const groups: CopyToCheck[][] = [];
  let bytes = 0;
  for (const c of copies) {
    if (groups.length === 0 || bytes + c.sizeBytes > budgetBytes) {
      groups.push([]);
      bytes = 0;
    }
    groups[groups.length - 1].push(c);
    bytes += c.sizeBytes;
  }
  const chosen = groups.length === 0 ? [] : groups[((rotation % groups.length) + groups.length) % groups.length];
  for (const c of chosen) {
    const found = await hashOne(c);
    if (found) out.findings.push(found);
    out.hashed++;
    out.bytesHashed += c.sizeBytes;
  }
  out.deferred = copies.length - chosen.length;
  return out;
}

/** The budget as people read it, for a log line. */
export function budgetText(h: DriftHashed, budgetBytes: number): string {
  return `${h.hashed} hashed (${formatBytes(h.bytesHashed)} of a ${formatBytes(budgetBytes)} budget), ${h.deferred} left for a later run`;
}
