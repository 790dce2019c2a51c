import fs from 'node:fs';
import path from 'node:path';
import { parseBlockId } from '../storage/block-ids';
import { IMAGE_NAME } from '../shared/names';

/**
 * The block index kept beside every deployed version, `<file>.blocks.json`: the block size and each
 * block's digest, as the committed block list's IDs give them. A later version of the same image finds
 * here which of its blocks the agent already holds, and where.
 */
export interface BlockIndex {
  sha256: string;
  sizeBytes: number;
  blockSize: number;
  /** Digest (as in the block ID) of each block, in order. */
  digests: string[];
}

/** A version on the agent's disk that a delta deploy may copy blocks from. */
export interface LocalBase {
  file: string;
  version: string;
  index: BlockIndex;
}

export const BLOCK_INDEX_SUFFIX = '.blocks.json';
const { O_NOFOLLOW, O_RDONLY } = fs.constants;
/** 50,000 digests of 32 hex digits and their quotes: an index larger than this is no index of ours. */
const MAX_INDEX_BYTES = 4 * 1024 * 1024;

export function blockIndexPath(finalFile: string): string {
  return `${finalFile}${BLOCK_INDEX_SUFFIX}`;
}

/**
 * The index a committed block list implies, or undefined when the list is not one vmhub committed (IDs
 * that are not index-and-digest, out of order, or blocks of unequal size before the last).
 */
export function blockIndexFromBlockList(
  blocks: readonly { name: string; size: number }[],
  image: { sha256: string; sizeBytes: number },
): BlockIndex | undefined {
  if (blocks.length === 0) return undefined;
  const blockSize = blocks[0].size;
  const digests: string[] = [];
  let total = 0;
  for (const [i, block] of blocks.entries()) {
    const id = parseBlockId(block.name);
    if (!id || id.index !== i) return undefined;
    if (i < blocks.length - 1 ? block.size !== blockSize : block.size <= 0 || block.size > blockSize) return undefined;
    digests.push(id.digest);
    total += block.size;
  }
  if (total !== image.sizeBytes) return undefined;
  return { sha256: image.sha256, sizeBytes: image.sizeBytes, blockSize, digests };
}

/** The index in a file's text, or undefined when it is not a consistent one. */
export function parseBlockIndex(text: string): BlockIndex | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  const i = value as Partial<BlockIndex> | null;
  if (
    typeof i !== 'object' ||
    i === null ||
    typeof i.sha256 !== 'string' ||
    !/^[0-9a-f]{64}$/.test(i.sha256) ||
    !Number.isSafeInteger(i.sizeBytes) ||
    !Number.isSafeInteger(i.blockSize) ||
    i.blockSize! <= 0 ||
    !Array.isArray(i.digests) ||
    i.digests.length !== Math.ceil(i.sizeBytes! / i.blockSize!) ||
    !i.digests.every((d) => typeof d === 'string' && /^[0-9a-f]{32}$/.test(d))
  ) {
    return undefined;
  }
  return { sha256: i.sha256, sizeBytes: i.sizeBytes!, blockSize: i.blockSize!, digests: i.digests };
}

/** A small regular file's text, never through a link; undefined when it is missing, a link or too large. */
async function readIndexFile(file: string): Promise<string | undefined> {
  const handle = await fs.promises.open(file, O_RDONLY | O_NOFOLLOW).catch(() => undefined);
  if (!handle) return undefined;
  try {
    const stat = await handle.stat();
    return stat.isFile() && stat.size <= MAX_INDEX_BYTES ? await handle.readFile('utf8') : undefined;
  } finally {
    await handle.close();
  }
}

/**
 * The other versions of an image in the agent's datastore (`<root>/<image>/<version>/`) that have a
 * block index and, beside it, the file it describes: the right size and its `.sha256` naming the same
 * digest. Links are never followed. The blocks' bytes are checked only as a deploy copies them.
 */
export async function localBases(root: string, image: string, exceptVersion: string): Promise<LocalBase[]> {
  // Only a real directory named as an image can be: no traversal, no link out of the datastore.
  if (!IMAGE_NAME.test(image)) return [];
  const imageDir = path.join(root, image);
  const stat = await fs.promises.lstat(imageDir).catch(() => undefined);
  if (!stat?.isDirectory()) return [];
  const versions = await fs.promises.readdir(imageDir, { withFileTypes: true }).catch(() => []);
  const bases: LocalBase[] = [];
  for (const entry of versions) {
    if (!entry.isDirectory() || entry.name === exceptVersion) continue;
    const dir = path.join(imageDir, entry.name);
    const files = await fs.promises.readdir(dir, { withFileTypes: true }).catch(() => []);
    for (const f of files) {
      if (!f.isFile() || !f.name.endsWith(BLOCK_INDEX_SUFFIX)) continue;
      const file = path.join(dir, f.name.slice(0, -BLOCK_INDEX_SUFFIX.length));
      const text = await readIndexFile(blockIndexPath(file));
      const index = text === undefined ? undefined : parseBlockIndex(text);
      if (!index) continue;
      const stat = await fs.promises.lstat(file).catch(() => undefined);
      const digest = await readIndexFile(`${file}.sha256`);
      if (stat?.isFile() && stat.size === index.sizeBytes && digest?.split(/\s/)[0] === index.sha256) {
        bases.push({ file, version: entry.name, index });
      }
    }
  }
  return bases;
}
