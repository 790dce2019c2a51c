import { ova } from './ova';
import { latin1, type ImageFormatRecord } from './record';

/**
 * An OVF package given by its descriptor: it is published as the OVA assembled from the package, so
 * from then on it is stored, inspected and deployed as an OVA.
 */
export const ovf: ImageFormatRecord<'ovf'> = {
  ...ova,
  name: 'ovf',
  description: 'OVF descriptor',
  sniffBytes: 512,
  // Last: a text test that other formats' bytes could pass by chance.
  sniffOrder: 2,
  sniff: (head) => {
    const start = latin1(head, 0, Math.min(head.length, 512))
      .replace(/^\uFEFF|^\xEF\xBB\xBF/, '')
      .trimStart();
    return start.startsWith('<?xml') || /^<([A-Za-z_][\w.-]*:)?Envelope[\s>]/.test(start);
  },
  assembledFromPackage: true,
};
