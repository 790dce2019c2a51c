import { VmhubError } from '../errors';

export type ImageFormat = 'ova' | 'ovf' | 'iso';
export const IMAGE_FORMATS: readonly ImageFormat[] = ['ova', 'ovf', 'iso'];

/** Bytes from the start of an image that are enough to tell its format: the ISO 9660 volume descriptor is at 32 KiB. */
export const SNIFF_BYTES = 32 * 1024 + 6;

/** An OVF package is published as the OVA that holds it, so both are stored as archives. */
export const CONTENT_TYPES: Record<ImageFormat, string> = {
  ova: 'application/ovf+tar',
  ovf: 'application/ovf+tar',
  iso: 'application/x-iso9660-image',
};

export const BLOB_EXTENSIONS: Record<ImageFormat, string> = { ova: 'ova', ovf: 'ova', iso: 'iso' };

/** What the bytes say the image is, or undefined when they match no supported format. */
export function sniffFormat(head: Uint8Array): ImageFormat | undefined {
  const text = (from: number, to: number) => Buffer.from(head.subarray(from, to)).toString('latin1');
  if (head.length >= 262 && text(257, 262) === 'ustar') return 'ova';
  if (head.length >= SNIFF_BYTES && text(32769, 32774) === 'CD001') return 'iso';
  const start = text(0, Math.min(head.length, 512))
    .replace(/^\uFEFF|^\xEF\xBB\xBF/, '')
    .trimStart();
  if (start.startsWith('<?xml') || /^<([A-Za-z_][\w.-]*:)?Envelope[\s>]/.test(start)) return 'ovf';
  return undefined;
}

/** The format to publish as: the declared one must agree with the bytes. */
export function decideFormat(head: Uint8Array, declared: ImageFormat | undefined, source: string): ImageFormat {
  const sniffed = sniffFormat(head);
  if (!sniffed) {
    throw new VmhubError('InvalidImage', `${source} is not an OVA (tar), OVF descriptor or ISO 9660 image`);
  }
  if (declared && declared !== sniffed) {
    throw new VmhubError('InvalidImage', `${source} was declared ${declared} but its bytes are ${sniffed}`);
  }
  return sniffed;
}
