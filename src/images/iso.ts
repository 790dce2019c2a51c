import { VmhubError } from '../shared/errors';

/** ISO 9660 volume metadata (ECMA-119), read from the volume descriptors that start at 32 KiB. */
export interface IsoMetadata {
  kind: 'iso';
  volumeId: string;
  systemId?: string;
  publisher?: string;
  application?: string;
  createdAt?: string;
  volumeSizeBytes: number;
  bootable: boolean;
  joliet: boolean;
  udf: boolean;
}

const SECTOR = 2048;
const FIRST = 16;
/** Descriptors are read from at most this many sectors, plus the UDF extended area after them. */
const MAX_DESCRIPTORS = 32;
export const ISO_HEAD_BYTES = (FIRST + MAX_DESCRIPTORS + 8) * SECTOR;

function str(buf: Buffer, from: number, to: number): string | undefined {
  const s = buf.toString('latin1', from, to).replace(/\0/g, '').trim();
  return s === '' ? undefined : s;
}

/** `YYYYMMDDHHMMSScc` plus a quarter-hour offset from GMT; all zeros means unset. */
function decDateTime(buf: Buffer, at: number): string | undefined {
  const s = buf.toString('latin1', at, at + 16);
  if (!/^\d{16}$/.test(s) || /^0+$/.test(s)) return undefined;
  const offsetMinutes = buf.readInt8(at + 16) * 15;
  const sign = offsetMinutes < 0 ? '-' : '+';
  const abs = Math.abs(offsetMinutes);
  const tz = `${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
  return `${s.slice(0, 4)}-${s.slice(4, 6)}-${s.slice(6, 8)}T${s.slice(8, 10)}:${s.slice(10, 12)}:${s.slice(12, 14)}.${s.slice(14, 16)}${tz}`;
}

/** Reads the volume descriptors from the first ISO_HEAD_BYTES of an image. */
export function parseIso(head: Buffer): IsoMetadata {
  if (head.length < (FIRST + 1) * SECTOR) throw new VmhubError('InvalidImage', 'image is too short to be an ISO 9660 volume');
  let primary: IsoMetadata | undefined;
  let bootable = false;
  let joliet = false;
  let end = FIRST;
  for (let sector = FIRST; sector < FIRST + MAX_DESCRIPTORS && (sector + 1) * SECTOR <= head.length; sector++) {
    const d = head.subarray(sector * SECTOR, (sector + 1) * SECTOR);
    if (d.toString('latin1', 1, 6) !== 'CD001') break;
    end = sector + 1;
    const type = d[0];
    if (type === 255) break;
    if (type === 0 && d.toString('latin1', 7, 30) === 'EL TORITO SPECIFICATION') bootable = true;
    if (type === 2 && /^%\/[@CE]/.test(d.toString('latin1', 88, 91))) joliet = true;
    if (type === 1 && !primary) {
      const blocks = d.readUInt32LE(80);
      const blockSize = d.readUInt16LE(128);
      primary = {
        kind: 'iso',
        volumeId: str(d, 40, 72) ?? '',
        systemId: str(d, 8, 40),
        publisher: str(d, 318, 446),
        application: str(d, 574, 702),
        createdAt: decDateTime(d, 813),
        volumeSizeBytes: blocks * blockSize,
        bootable: false,
        joliet: false,
        udf: false,
      };
    }
  }
  if (!primary) throw new VmhubError('InvalidImage', 'image has no ISO 9660 primary volume descriptor');
  // UDF announces itself in the extended area that follows the ISO 9660 descriptors.
  let udf = false;
  for (let sector = end; sector < end + 8 && (sector + 1) * SECTOR <= head.length; sector++) {
    if (/^(NSR02|NSR03)$/.test(head.toString('latin1', sector * SECTOR + 1, sector * SECTOR + 6))) udf = true;
  }
  return { ...primary, bootable, joliet, udf };
}
