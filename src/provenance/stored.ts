import { VmhubError } from '../shared/errors';
import { unlessNotFound, type BlockStore } from '../storage/block-store';
import { MAX_ENVELOPE_BYTES, parseEnvelope, type Envelope } from './dsse';

/**
 * Where a version's signed provenance lives: a blob beside the image's own, in every location that holds
 * the image. Its name is the only thing derived from the blob's: what it says is checked by its signature.
 */
export function envelopeBlobOf(blob: string): string {
  return `${blob}.dsse.json`;
}

/** The envelope stored beside `blob`; none there is UnsignedImage. */
export async function readStoredEnvelope(store: BlockStore, blob: string, abortSignal?: AbortSignal): Promise<Envelope> {
  const name = envelopeBlobOf(blob);
  const props = await unlessNotFound(store.getProperties(name, { abortSignal }));
  if (!props) throw new VmhubError('UnsignedImage', `${name} is missing: the version has no signed provenance there`);
  if (props.contentLength > MAX_ENVELOPE_BYTES) {
    throw new VmhubError('UnsignedImage', `${name} is ${props.contentLength} bytes, over the ${MAX_ENVELOPE_BYTES} accepted`);
  }
  const bytes = await store.readInto(name, Buffer.alloc(props.contentLength), 0, { abortSignal });
  return parseEnvelope(bytes.toString('utf8'));
}

export async function writeStoredEnvelope(
  store: BlockStore,
  blob: string,
  envelope: Envelope,
  abortSignal?: AbortSignal,
): Promise<void> {
  await store.upload(envelopeBlobOf(blob), JSON.stringify(envelope), { contentType: 'application/json', abortSignal });
}

/** Copies the envelope beside `blob` from one location to another, if the first has one; true when it did. */
export async function copyStoredEnvelope(
  from: BlockStore,
  to: BlockStore,
  blob: string,
  abortSignal?: AbortSignal,
): Promise<boolean> {
  const name = envelopeBlobOf(blob);
  const props = await unlessNotFound(from.getProperties(name, { abortSignal }));
  if (!props || props.contentLength > MAX_ENVELOPE_BYTES) return false;
  const bytes = await from.readInto(name, Buffer.alloc(props.contentLength), 0, { abortSignal });
  await to.upload(name, bytes, { contentType: 'application/json', abortSignal });
  return true;
}
