import { decideFormat, formatOf, SNIFF_BYTES, type ImageFormat } from '../shared/image-format';
import { VmhubError } from '../shared/errors';
import { openSource } from './open';
import { OvfPackageSource } from './ovf-package';
import type { SourcePolicy } from './policy';
import { resolveSource, type ImageSource } from './source';

/**
 * The bytes to publish for a `source`: the file or URL itself for an OVA or ISO, or for an OVF
 * descriptor the OVA assembled from its package. The format is told from the bytes.
 */
export interface OpenedImage {
  image: ImageSource;
  format: ImageFormat;
}

export interface OpenImageOptions {
  declared?: ImageFormat;
  signal?: AbortSignal;
  /** Which http(s) servers the source may be read from: the strict policy by default. */
  policy?: SourcePolicy;
  /** The `version` an earlier open saw: other content is `SourceChanged`. */
  pin?: string;
}

export async function openImageSource(source: string, roots: string[], options: OpenImageOptions = {}): Promise<OpenedImage> {
  const { signal, policy } = options;
  const raw = await openSource(resolveSource(source, roots), { signal, policy });
  let image: ImageSource = raw;
  try {
    const head = raw.sizeBytes === 0 ? Buffer.alloc(0) : await raw.read(0, Math.min(SNIFF_BYTES, raw.sizeBytes), signal);
    const format = decideFormat(head, options.declared, source);
    if (formatOf(format).assembledFromPackage) image = await OvfPackageSource.open(raw, roots, { signal, policy });
    if (options.pin !== undefined && image.version !== options.pin) {
      throw new VmhubError('SourceChanged', `${source} changed since it was first read`);
    }
    return { image, format };
  } catch (err) {
    await image.close();
    throw err;
  }
}
