import type { ImageVersionRecord } from '../catalog/image-records';
import { VmhubError } from '../shared/errors';
import { hashBlob } from '../storage/blob-hash';
import type { BlockStore } from '../storage/block-store';

/**
 * The SHA-256 a copy of a version must hash to. Every check of a replica's bytes takes it from here,
 * so the one place to change is this, should the digest come from a signed statement rather than the
 * catalog record publish wrote.
 */
export function expectedSha256(record: Pick<ImageVersionRecord, 'image' | 'version' | 'sha256'>): string {
  if (!record.sha256) throw new VmhubError('UnknownImage', `${record.image}@${record.version} has no SHA-256 to check a copy by`);
  return record.sha256;
}

/** What reading a replica's bytes found: right (at this etag), or why not. */
export type ContentCheck = { verified: true; etag: string; hashedAt: Date } | { verified: false; reason: string };

/**
 * Reads a replica's committed bytes and hashes them against the version's SHA-256: the only way a
 * replica becomes `verified`. Block IDs and metadata are labels any writer of the blob chooses; its
 * bytes are not. Costs one read of the whole blob from the replica's storage.
 */
export async function checkContent(
  store: BlockStore,
  record: Pick<ImageVersionRecord, 'image' | 'version' | 'sha256' | 'sizeBytes' | 'location'>,
  options: { signal: AbortSignal },
): Promise<ContentCheck> {
  const expected = expectedSha256(record);
  const hash = await hashBlob(store, record.location.blob, options);
  if (hash.sizeBytes !== record.sizeBytes) {
    return { verified: false, reason: `holds ${hash.sizeBytes} bytes, the version ${record.sizeBytes}` };
  }
  if (hash.sha256 !== expected) return { verified: false, reason: `its bytes hash to ${hash.sha256}, expected ${expected}` };
  return { verified: true, etag: hash.etag, hashedAt: new Date() };
}
