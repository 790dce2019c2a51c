import type { Command } from 'commander';
import type { ImageVersionRecord } from '../catalog/image-records';
import { blockIndexFromBlockList, type BlockIndex } from '../deploy/block-index';
import { sharedContent } from '../deploy/delta-plan';
import { diffMetadata, type MetadataDiff } from '../images/version-diff';
import { formatBytes, plural } from '../shared/units';
import type { BlockStores } from '../storage/block-store';
import { parseRef, unknownVersion } from './checks';
import { examples, jsonOption } from './command';
import type { CliDeps } from './deps';
import { print } from './output';
import { renderMetadataDiff } from './diff-text';

export interface DiffOptions {
  a: { image: string; version: string };
  b: { image: string; version: string };
}

/** One side of the comparison: the version's identity and the facts of its blob. */
export interface DiffSide {
  image: string;
  version: string;
  status: ImageVersionRecord['status'];
  format: string;
  sizeBytes: number;
  sha256?: string;
  blockSize: number;
  blockCount: number;
}

/**
 * How much of b a holder of a already has, by the content digest in each committed block ID, as a delta
 * deploy of b to an SDDC holding a counts it; `unknown` says why it could not be told.
 */
export type BlocksShared =
  { sharedBlocks: number; blockCount: number; sharedBytes: number; sizeBytes: number; note?: string } | { unknown: string };

export interface DiffResult {
  a: DiffSide;
  b: DiffSide;
  /** Both blobs have the same SHA-256: the same bytes. */
  identical: boolean;
  metadata: MetadataDiff;
  blocks: BlocksShared;
}

function sideOf(r: ImageVersionRecord): DiffSide {
  return {
    image: r.image,
    version: r.version,
    status: r.status,
    format: r.format,
    sizeBytes: r.sizeBytes,
    ...(r.sha256 ? { sha256: r.sha256 } : {}),
    blockSize: r.blockSize,
    blockCount: r.blockCount,
  };
}

const refOf = (r: { image: string; version: string }) => `${r.image}@${r.version}`;

/** The version's block index, read from its committed block list; a string says why there is none. */
async function blockIndexOf(stores: BlockStores, r: ImageVersionRecord): Promise<BlockIndex | string> {
  if (r.status !== 'available') return `${refOf(r)} is ${r.status}, so its blob is not read`;
  try {
    const blocks = await stores.store(r.location.storage).committedBlocks(r.location.blob);
    return (
      blockIndexFromBlockList(blocks, { sha256: r.sha256 ?? '', sizeBytes: r.sizeBytes }) ??
      `the block list of ${refOf(r)} is not one vmhub committed`
    );
  } catch (err) {
    return `cannot read the block list of ${refOf(r)}: ${(err as Error).message.split('\n')[0]}`;
  }
}

async function blocksShared(deps: CliDeps, a: ImageVersionRecord, b: ImageVersionRecord): Promise<BlocksShared> {
  if (!deps.storage) return { unknown: 'this CLI has no storage access' };
  let stores: BlockStores;
  try {
    stores = deps.storage();
  } catch (err) {
    return { unknown: `no storage: ${(err as Error).message.split('\n')[0]}` };
  }
  const [ia, ib] = await Promise.all([blockIndexOf(stores, a), blockIndexOf(stores, b)]);
  if (typeof ia === 'string') return { unknown: ia };
  if (typeof ib === 'string') return { unknown: ib };
  const shared = sharedContent(ib, ia);
  return {
    sharedBlocks: shared.blocks,
    blockCount: ib.digests.length,
    sharedBytes: shared.bytes,
    sizeBytes: ib.sizeBytes,
    ...(ia.blockSize !== ib.blockSize
      ? {
          note: `block sizes differ (${formatBytes(ia.blockSize)} and ${formatBytes(ib.blockSize)}): a delta deploy reuses nothing`,
        }
      : {}),
  };
}

export async function run(options: DiffOptions, deps: CliDeps): Promise<DiffResult> {
  const catalog = await deps.catalog();
  const resolve = async ({ image, version }: DiffOptions['a']): Promise<ImageVersionRecord> => {
    const record = await catalog.versions.resolve(image, version);
    if (!record) throw await unknownVersion(catalog, image, version);
    return record;
  };
  const [a, b] = [await resolve(options.a), await resolve(options.b)];
  return {
    a: sideOf(a),
    b: sideOf(b),
    identical: a.sha256 !== undefined && a.sha256 === b.sha256,
    metadata: diffMetadata(a.metadata, b.metadata),
    blocks: await blocksShared(deps, a, b),
  };
}

function blocksLine(r: DiffResult): string {
  const s = r.blocks;
  if ('unknown' in s) return `blocks shared  not known: ${s.unknown}`;
  const percent = s.blockCount > 0 ? ((100 * s.sharedBlocks) / s.blockCount).toFixed(1) : '0.0';
  const what = `${s.sharedBlocks} of ${plural(s.blockCount, 'block')} of ${refOf(r.b)} (${percent} %, ${formatBytes(s.sharedBytes)} of ${formatBytes(s.sizeBytes)})`;
  return `blocks shared  ${what} are already held by a holder of ${refOf(r.a)}${s.note ? `; ${s.note}` : ''}`;
}

export function renderText(r: DiffResult): string[] {
  const side = (s: DiffSide) => `${refOf(s)}  ${s.status}  ${s.format}  ${formatBytes(s.sizeBytes)}`;
  return [
    `a  ${side(r.a)}`,
    `b  ${side(r.b)}`,
    `sha256         a ${r.a.sha256 ?? '-'}`,
    `               b ${r.b.sha256 ?? '-'}${r.identical ? '  (identical bytes)' : ''}`,
    ...renderMetadataDiff(r.metadata),
    blocksLine(r),
  ];
}

export function register(program: Command, deps: CliDeps): void {
  program
    .command('diff')
    .description(
      'compare two versions (of one image or two): hardware, disks, networks, OVF properties, and the blocks of b a holder of a already has',
    )
    .argument('<a>', 'image@version, image@latest or image@latest-pre: the version compared from')
    .argument('<b>', 'image@version, image@latest or image@latest-pre: the version compared to')
    .addOption(jsonOption())
    .addHelpText(
      'after',
      examples('vmhub diff ubuntu-app@2.3.0 ubuntu-app@2.3.1', 'vmhub diff ubuntu-app@2.3.1 ubuntu-app@latest --json'),
    )
    .action(async (a: string, b: string, opts: { json?: boolean }) => {
      const result = await run({ a: parseRef(a), b: parseRef(b) }, deps);
      print(deps.io, Boolean(opts.json), result, () => renderText(result));
    });
}
