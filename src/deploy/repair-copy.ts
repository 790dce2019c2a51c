import type fs from 'node:fs';
import type { InspectOptions } from '../images/inspect';
import type { ImageFormat } from '../shared/image-format';
import { blockDigestOf } from '../storage/block-ids';
import { hashPool } from '../storage/hashing';
import type { CopiedBlock } from './delta-plan';
import type { FetchRange } from './local-copy';
import { hashFile, type Hashed } from './verify';

/**
 * The blocks of the file whose bytes do not match their digests, each read back on a hashing thread:
 * never more than that thread's piece in memory, whatever the block size.
 */
export async function blocksNotMatching(fd: number, blocks: readonly CopiedBlock[]): Promise<CopiedBlock[]> {
  const damaged: CopiedBlock[] = [];
  for (const block of blocks) {
    const stream = await hashPool().openStream();
    try {
      await stream.pushFile(fd, block.start, block.end - block.start);
      if (blockDigestOf((await stream.finish()).sha256) !== block.digest) damaged.push(block);
    } finally {
      await stream.close();
    }
  }
  return damaged;
}

/**
 * A file begun as a copy of an earlier version has failed its SHA-256: most likely that version's file
 * was damaged on disk after it was verified. Its kept blocks whose bytes no longer match their digests
 * are fetched again and the whole file hashed anew; only this path reads them one by one. Undefined when
 * every kept block matches: then the block list or the source is at fault, and the caller downloads in full.
 */
export async function repairKeptBlocks(
  handle: fs.promises.FileHandle,
  kept: readonly CopiedBlock[],
  fetch: FetchRange,
  image: { format: ImageFormat; sizeBytes: number; inspect?: InspectOptions },
): Promise<{ hashed: Hashed; refetched: CopiedBlock[] } | undefined> {
  const damaged = await blocksNotMatching(handle.fd, kept);
  if (damaged.length === 0) return undefined;
  for (const block of damaged) await fetch(block.start, block.end - block.start);
  return { hashed: await hashFile(handle, image.format, image.sizeBytes, image.inspect), refetched: damaged };
}
