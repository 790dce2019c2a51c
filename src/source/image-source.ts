import { decideFormat, SNIFF_BYTES, type ImageFormat } from '../images/format';
import { OvfPackageSource } from './ovf-package';
import { openSource, resolveSource, type ImageSource } from './source';

/**
 * The bytes to publish for a `source`: the file or URL itself for an OVA or ISO, or for an OVF
 * descriptor the OVA assembled from its package. The format is told from the bytes.
 */
export interface OpenedImage {
  image: ImageSource;
  format: ImageFormat;
}

export async function openImageSource(
  source: string,
  roots: string[],
  options: { declared?: ImageFormat; signal?: AbortSignal } = {},
): Promise<OpenedImage> {
  const raw = await openSource(resolveSource(source, roots), options.signal);
  try {
    const head = raw.sizeBytes === 0 ? Buffer.alloc(0) : await raw.read(0, Math.min(SNIFF_BYTES, raw.sizeBytes), options.signal);
    const format = decideFormat(head, options.declared, source);
    if (format !== 'ovf') return { image: raw, format };
    return { image: await OvfPackageSource.open(raw, roots, options.signal), format };
  } catch (err) {
    await raw.close();
    throw err;
  }
}
