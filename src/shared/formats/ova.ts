import { certificateOf, describeCertificate } from '../ovf-policy';
import { formatBytes, formatMiB } from '../units';
import type { ImageMetadata } from '../../images/inspect';
import { latin1, type ImageFormatRecord } from './record';

/** The OVF package's facts, for an OVA and for an OVF package (published as an OVA). */
function ovaMetadataLines(m: ImageMetadata): string[] {
  if (m.kind !== 'ova') return [];
  return [
    `product    ${[m.vendor, m.product, m.fullVersion ?? m.version].filter(Boolean).join(' ')}`,
    `os         ${[m.os?.osType, m.os?.description].filter(Boolean).join(' — ')}`,
    `hardware   ${m.hardwareFamily.join(' ')} ${m.firmware}, ${m.cpus} CPU, ${formatMiB(m.memoryMiB)}`,
    ...m.disks.map(
      (d) => `disk       ${d.diskId} ${d.capacityBytes !== undefined ? formatBytes(d.capacityBytes) : d.capacityUnresolved}`,
    ),
    `manifest   ${m.archive.manifest ?? 'none'}`,
    `ovf cert   ${describeCertificate(certificateOf(m))}`,
  ];
}

/** An OVA: a tar archive holding an OVF package, descriptor first. */
export const ova: ImageFormatRecord<'ova'> = {
  name: 'ova',
  description: 'OVA (tar)',
  sniffBytes: 262,
  sniffOrder: 0,
  sniff: (head) => head.length >= 262 && latin1(head, 257, 262) === 'ustar',
  inspector: 'ova',
  inspectOnDeploy: true,
  contentType: 'application/ovf+tar',
  blobExtension: 'ova',
  hasDescriptor: true,
  assembledFromPackage: false,
  libraryItem: { type: 'ovf', members: true },
  canInstantiate: true,
  metadataLines: ovaMetadataLines,
};
