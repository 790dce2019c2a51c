import { isBlockStoreError, type BlockStore, type BlockStores } from '../storage/block-store';
import { SourceProblem, type DownloadInput } from './download-request';
import type { SourceCandidate } from './placement';

/**
 * Opens a source and checks it holds the version's bytes: the size and SHA-256 the catalog has, and the
 * etag the source had when it was verified. What it cannot deliver is a SourceProblem; an abort is thrown as it is.
 */
export async function checkSource(
  storage: BlockStores,
  source: SourceCandidate,
  input: Pick<DownloadInput, 'blob' | 'sha256' | 'sizeBytes'>,
  signal: AbortSignal,
): Promise<{ store: BlockStore; etag: string }> {
  let store;
  let props;
  try {
    // A location this agent's topology does not know (added on the control plane first) is passed over.
    store = storage.store(source.location);
    props = await store.getProperties(input.blob, { abortSignal: signal });
  } catch (err) {
    if (signal.aborted) throw err;
    if (isBlockStoreError(err, 'not-found')) throw new SourceProblem('failed', 'blob is missing');
    throw new SourceProblem('unreachable', `unreachable: ${(err as Error).message.split('\n')[0]}`);
  }
  if (props.contentLength !== input.sizeBytes || props.metadata.sha256 !== input.sha256) {
    throw new SourceProblem(
      'stale',
      `holds other bytes (size ${props.contentLength}, sha256 ${props.metadata.sha256 ?? 'unset'})`,
    );
  }
  if (source.etag && props.etag !== source.etag)
    throw new SourceProblem('stale', `changed since it was verified (etag ${props.etag})`);
  return { store, etag: props.etag };
}
