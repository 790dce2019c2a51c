import { VmhubError } from './errors';
import { iso } from './formats/iso';
import { ova } from './formats/ova';
import { ovf } from './formats/ovf';
import type { ImageFormatRecord } from './formats/record';

/** Every image format vmhub publishes, in the order the CLI lists them; each is one module in ./formats. */
const FORMATS = [ova, ovf, iso] as const;

export type ImageFormat = (typeof FORMATS)[number]['name'];
export const IMAGE_FORMATS: readonly ImageFormat[] = FORMATS.map((f) => f.name);

/** The record of a format, or undefined for a name that is none: for code that must not throw (workflows, threads). */
export function findFormat(format: string): ImageFormatRecord<ImageFormat> | undefined {
  return FORMATS.find((f) => f.name === format);
}

export function formatOf(format: ImageFormat): ImageFormatRecord<ImageFormat> {
  const record = findFormat(format);
  if (!record) throw new VmhubError('InvalidInput', `format ${JSON.stringify(format)} is not one of ${IMAGE_FORMATS.join(', ')}`);
  return record;
}

const table = (field: (f: ImageFormatRecord) => string) =>
  Object.fromEntries(FORMATS.map((f) => [f.name, field(f)])) as Record<ImageFormat, string>;

export const CONTENT_TYPES = table((f) => f.contentType);
export const BLOB_EXTENSIONS = table((f) => f.blobExtension);

/** Bytes from the start of an image that are enough to tell its format. */
export const SNIFF_BYTES = Math.max(...FORMATS.map((f) => f.sniffBytes));

const SNIFF_ORDER = [...FORMATS].sort((a, b) => a.sniffOrder - b.sniffOrder);

/** What the bytes say the image is, or undefined when they match no supported format. */
export function sniffFormat(head: Uint8Array): ImageFormat | undefined {
  return SNIFF_ORDER.find((f) => f.sniff(head))?.name;
}

/** The format to publish as: the declared one must agree with the bytes. */
export function decideFormat(head: Uint8Array, declared: ImageFormat | undefined, source: string): ImageFormat {
  const sniffed = sniffFormat(head);
  if (!sniffed) {
    const names = FORMATS.map((f) => f.description);
    throw new VmhubError('InvalidImage', `${source} is not an ${names.slice(0, -1).join(', ')} or ${names.at(-1)}`);
  }
  if (declared && declared !== sniffed) {
    throw new VmhubError('InvalidImage', `${source} was declared ${declared} but its bytes are ${sniffed}`);
  }
  return sniffed;
}
