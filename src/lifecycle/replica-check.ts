/** What a copy of a blob is, as storage reports it: its committed block IDs, size and recorded SHA-256. */
export interface BlobState {
  blockIds: string[];
  sizeBytes: number;
  sha256: string | undefined;
}

/**
 * Why a replica differs from the primary, or undefined when they agree. Block IDs carry each block's
 * digest, so equal committed block lists and sizes mean equal bytes; the SHA-256 metadata is what an
 * agent checks a source by before it reads it.
 */
export function replicaDifference(primary: BlobState, replica: BlobState | undefined): string | undefined {
  if (!replica) return 'blob is missing';
  if (replica.sizeBytes !== primary.sizeBytes) return `size is ${replica.sizeBytes} bytes, the primary's ${primary.sizeBytes}`;
  if (replica.blockIds.length !== primary.blockIds.length) {
    return `${replica.blockIds.length} committed blocks, the primary has ${primary.blockIds.length}`;
  }
  const first = primary.blockIds.findIndex((id, i) => replica.blockIds[i] !== id);
  if (first >= 0) return `committed block ${first} differs from the primary's`;
  if (replica.sha256 !== primary.sha256)
    return `SHA-256 metadata is ${replica.sha256 ?? 'unset'}, the primary's ${primary.sha256 ?? 'unset'}`;
  return undefined;
}
