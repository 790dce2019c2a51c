import type { ImageMetadata } from '../../images/inspect';
import { latin1, type ImageFormatRecord } from './record';

/** The ISO 9660 volume descriptor's magic is at 32 KiB + 1. */
const SNIFF_BYTES = 32 * 1024 + 6;

function isoMetadataLines(m: ImageMetadata): string[] {
  return m.kind === 'iso' ? [`volume     ${m.volumeId}${m.bootable ? ' (bootable)' : ''}`] : [];
}

/** An ISO 9660 image: installation media, deployed as one file and never instantiated. */
export const iso: ImageFormatRecord<'iso'> = {
  name: 'iso',
  description: 'ISO 9660 image',
  sniffBytes: SNIFF_BYTES,
  sniffOrder: 1,
  sniff: (head) => head.length >= SNIFF_BYTES && latin1(head, 32769, 32774) === 'CD001',
  inspector: 'iso',
  // Its inspection only reads metadata; the SHA-256 is the whole check.
  inspectOnDeploy: false,
  contentType: 'application/x-iso9660-image',
  blobExtension: 'iso',
  hasDescriptor: false,
  assembledFromPackage: false,
  libraryItem: { type: 'iso', members: false },
  canInstantiate: false,
  metadataLines: isoMetadataLines,
};
