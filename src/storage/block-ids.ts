import { createHash } from 'node:crypto';
import { hashPool } from './hashing';

/**
 * Block IDs that bind each block's bytes: `<index, 6 digits>-<first 32 hex digits of the block's SHA-256>`,
 * base64-encoded, so every ID of a blob has the same length (Azure requires it), says its position, and
 * says which bytes it holds: an attempt that finds its ID among the uncommitted blocks skips the upload.
 */
/** The part of a block's SHA-256 (hex) that its ID carries. */
export function blockDigestOf(sha256: string): string {
  return sha256.slice(0, 32);
}

/** The digest of a block's bytes, computed on a hashing thread (of a copy) so transfers keep flowing. */
export async function blockDigest(bytes: Uint8Array): Promise<string> {
  return blockDigestOf(await hashPool().sha256(bytes));
}

export function blockId(index: number, digest: string): string {
  if (!Number.isInteger(index) || index < 0 || index >= 1_000_000) throw new RangeError(`block index ${index} out of range`);
  return Buffer.from(`${String(index).padStart(6, '0')}-${digest}`).toString('base64');
}

export function parseBlockId(id: string): { index: number; digest: string } | undefined {
  const m = /^(\d{6})-([0-9a-f]{32})$/.exec(Buffer.from(id, 'base64').toString('latin1'));
  return m ? { index: Number(m[1]), digest: m[2] } : undefined;
}

/** One digest over the ordered block IDs: binds a committed block list to a sequential pass over the source. */
export function blockListDigest(ids: Iterable<string>): string {
  const h = createHash('sha256');
  for (const id of ids) h.update(id).update('\n');
  return h.digest('hex');
}
