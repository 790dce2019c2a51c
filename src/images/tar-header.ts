/**
 * Tar headers for archives vmhub writes itself (an OVA assembled from an OVF package): ustar, with a
 * PAX extended header where a name exceeds 100 bytes or a size 8 GiB. Times, owners and modes are
 * fixed so the same package always gives the same bytes, and so the same SHA-256.
 */
export const BLOCK = 512;

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, '0') + '\0';
}

function header(name: string, size: number, type: '0' | 'x'): Buffer {
  const buf = Buffer.alloc(BLOCK);
  buf.write(name, 0, 100, 'utf8');
  buf.write(octal(0o644, 8), 100, 'latin1');
  buf.write(octal(0, 8), 108, 'latin1');
  buf.write(octal(0, 8), 116, 'latin1');
  buf.write(octal(size, 12), 124, 'latin1');
  buf.write(octal(0, 12), 136, 'latin1');
  buf.write('        ', 148, 'latin1');
  buf.write(type, 156, 'latin1');
  buf.write('ustar\0', 257, 'latin1');
  buf.write('00', 263, 'latin1');
  let sum = 0;
  for (const b of buf) sum += b;
  buf.write(octal(sum, 7) + ' ', 148, 'latin1');
  return buf;
}

function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let len = Buffer.byteLength(body) + 1;
  while (String(len).length + Buffer.byteLength(body) !== len) len = String(len).length + Buffer.byteLength(body);
  return `${len}${body}`;
}

export function padded(size: number): number {
  return Math.ceil(size / BLOCK) * BLOCK;
}

/** The bytes that precede an entry's content: its header, and a PAX header before it when needed. */
export function entryHeader(name: string, size: number): Buffer {
  const records: string[] = [];
  if (Buffer.byteLength(name) > 100) records.push(paxRecord('path', name));
  if (size > 0o77777777777) records.push(paxRecord('size', String(size)));
  const main = header(Buffer.byteLength(name) > 100 ? name.slice(0, 99) : name, Math.min(size, 0o77777777777), '0');
  if (records.length === 0) return main;
  const pax = Buffer.from(records.join(''), 'utf8');
  return Buffer.concat([header('PaxHeader', pax.length, 'x'), pax, Buffer.alloc(padded(pax.length) - pax.length), main]);
}

/** Two zero blocks end an archive. */
export const END_OF_ARCHIVE = Buffer.alloc(2 * BLOCK);
