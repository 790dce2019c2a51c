import { VmhubError } from '../shared/errors';
import { BLOCK, padded } from './tar-header';
import { quoted } from './xml';

/**
 * A streaming reader of tar archives (ustar, GNU and PAX headers, base-256 sizes) for untrusted
 * bytes. Every malformed header is an `InvalidImage`, the number of members is capped, extended
 * headers are bounded, and reading stops at the end-of-archive marker: whatever follows two zero
 * blocks is not parsed. Work is linear in the bytes read and never more than one header is buffered.
 */
export const MAX_MEMBERS = 10_000;
const MAX_EXTENDED_HEADER = 1024 * 1024;
/** A member name longer than any file system's path is no image's: every name is kept until the end. */
export const MAX_NAME_BYTES = 4096;
/** Global PAX records apply to every later member: their total stays small so each member's lookup does. */
const MAX_GLOBAL_PAX = 64 * 1024;

export interface TarEntry {
  name: string;
  size: number;
  type: 'file' | 'hard link' | 'symlink' | 'character device' | 'block device' | 'directory' | 'FIFO' | `type ${string}`;
}

/** Receives one member's bytes, exactly `size` of them, then `end`. */
export interface TarSink {
  update(chunk: Buffer): void;
  end(): void | Promise<void>;
}

const TYPES: Record<string, TarEntry['type']> = {
  '0': 'file',
  '\0': 'file',
  '7': 'file',
  '1': 'hard link',
  '2': 'symlink',
  '3': 'character device',
  '4': 'block device',
  '5': 'directory',
  '6': 'FIFO',
};

function corrupt(offset: number, what: string): VmhubError {
  return new VmhubError('InvalidImage', `archive is corrupt: ${what} at byte ${offset}`);
}

function longName(offset: number): VmhubError {
  return new VmhubError('InvalidImage', `archive has a member name longer than ${MAX_NAME_BYTES} bytes at byte ${offset}`);
}

function cString(block: Buffer, from: number, to: number): string {
  const end = block.indexOf(0, from);
  return block.toString('utf8', from, end === -1 || end > to ? to : end);
}

/** A numeric header field: octal digits (space or NUL padded), or GNU base-256 when the high bit is set. */
function numeric(block: Buffer, from: number, length: number, offset: number): number {
  if (block[from] & 0x80) {
    if (block[from] !== 0x80) throw corrupt(offset, 'a negative number in a header');
    let n = 0;
    for (let i = from + 1; i < from + length; i++) n = n * 256 + block[i];
    if (!Number.isSafeInteger(n)) throw corrupt(offset, 'a number too large in a header');
    return n;
  }
  const text = block
    .toString('latin1', from, from + length)
    .replace(/[\0 ]+$/, '')
    .replace(/^ +/, '');
  if (!/^[0-7]*$/.test(text)) throw corrupt(offset, 'a header field that is not octal');
  return text === '' ? 0 : parseInt(text, 8);
}

interface Header {
  name: string;
  size: number;
  flag: string;
}

function parseHeader(block: Buffer, offset: number): Header | 'zero' {
  if (block.every((b) => b === 0)) return 'zero';
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : block[i];
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  const stored = numeric(block, 148, 8, offset);
  if (stored !== unsigned && stored !== signed) throw corrupt(offset, 'a header that fails its checksum');
  const magic = block.toString('latin1', 257, 263);
  if (magic !== 'ustar\0' && magic !== 'ustar ') throw corrupt(offset, 'a header that is not ustar, GNU or PAX');
  const name = cString(block, 0, 100);
  // GNU headers keep times where ustar keeps the name's prefix.
  const prefix = magic === 'ustar\0' ? cString(block, 345, 500) : '';
  return {
    name: prefix ? `${prefix}/${name}` : name,
    size: numeric(block, 124, 12, offset),
    flag: String.fromCharCode(block[156]),
  };
}

/** PAX records, `LENGTH key=value\n`, as a map; anything else is corrupt. */
function parsePax(data: Buffer, offset: number): Map<string, string> {
  const records = new Map<string, string>();
  let at = 0;
  while (at < data.length) {
    if (data[at] === 0) break;
    const space = data.indexOf(0x20, at);
    const length = space === -1 ? NaN : Number(data.toString('latin1', at, space));
    if (
      !Number.isSafeInteger(length) ||
      length <= space - at + 1 ||
      at + length > data.length ||
      data[at + length - 1] !== 0x0a
    ) {
      throw corrupt(offset, 'a malformed PAX header');
    }
    const record = data.toString('utf8', space + 1, at + length - 1);
    const eq = record.indexOf('=');
    if (eq <= 0) throw corrupt(offset, 'a malformed PAX record');
    records.set(record.slice(0, eq), record.slice(eq + 1));
    at += length;
  }
  return records;
}

type State =
  | { kind: 'header' }
  | { kind: 'extended'; flag: string; data: Buffer; filled: number; at: number }
  | { kind: 'data'; sink: TarSink; name: string; remaining: number }
  | { kind: 'skip'; remaining: number }
  | { kind: 'end' };

export class TarReader {
  private state: State = { kind: 'header' };
  private readonly block = Buffer.alloc(BLOCK);
  private filled = 0;
  private offset = 0;
  private members = 0;
  private zeroBlocks = 0;
  private failure: unknown;
  private readonly globalPax = new Map<string, string>();
  private globalPaxBytes = 0;
  private pax = new Map<string, string>();
  private longName?: string;

  constructor(private readonly onEntry: (entry: TarEntry) => TarSink | Promise<TarSink>) {}

  /** Feeds the next bytes; a failure is final, and every later call reports it again. */
  async write(chunk: Buffer): Promise<void> {
    if (this.failure) throw this.failure;
    try {
      await this.consume(chunk);
    } catch (err) {
      this.failure = err;
      throw err;
    }
  }

  /** After the last byte: an archive may end at a member boundary, with or without its marker. */
  finish(): void {
    if (this.failure) throw this.failure;
    const s = this.state;
    if (s.kind === 'end' || (s.kind === 'header' && this.filled === 0)) return;
    this.failure = new VmhubError(
      'InvalidImage',
      s.kind === 'data' ? `archive is truncated inside ${quoted(s.name)}` : 'archive is truncated',
    );
    throw this.failure;
  }

  private async consume(chunk: Buffer): Promise<void> {
    let at = 0;
    while (at < chunk.length && this.state.kind !== 'end') {
      const s = this.state;
      const room = s.kind === 'header' ? BLOCK - this.filled : s.kind === 'extended' ? s.data.length - s.filled : s.remaining;
      const n = Math.min(room, chunk.length - at);
      const bytes = chunk.subarray(at, at + n);
      at += n;
      this.offset += n;
      if (s.kind === 'header') {
        bytes.copy(this.block, this.filled);
        this.filled += n;
        if (this.filled === BLOCK) {
          this.filled = 0;
          await this.header(this.offset - BLOCK);
        }
      } else if (s.kind === 'extended') {
        bytes.copy(s.data, s.filled);
        s.filled += n;
        if (s.filled === s.data.length) this.extended(s.flag, s.data, s.at);
      } else if (s.kind === 'data') {
        s.sink.update(bytes);
        s.remaining -= n;
        if (s.remaining === 0) {
          await s.sink.end();
          this.toNextHeader();
        }
      } else {
        s.remaining -= n;
        if (s.remaining === 0) this.state = { kind: 'header' };
      }
    }
  }

  /** Past a member's content or an extended header: skip the padding to the next block. */
  private toNextHeader(): void {
    const pad = padded(this.offset) - this.offset;
    this.state = pad > 0 ? { kind: 'skip', remaining: pad } : { kind: 'header' };
  }

  private async header(offset: number): Promise<void> {
    const h = parseHeader(this.block, offset);
    if (h === 'zero') {
      if (++this.zeroBlocks === 2) this.state = { kind: 'end' };
      return;
    }
    if (this.zeroBlocks > 0) throw corrupt(offset, 'a member after a lone zero block');
    if (h.flag === 'x' || h.flag === 'g' || h.flag === 'L' || h.flag === 'K') {
      // Extended headers count as members: an archive of nothing but headers is bounded too.
      if (++this.members > MAX_MEMBERS) throw new VmhubError('InvalidImage', `archive holds more than ${MAX_MEMBERS} members`);
      if (h.flag === 'g' && (this.globalPaxBytes += h.size) > MAX_GLOBAL_PAX) {
        throw corrupt(offset, `global extended headers larger than ${MAX_GLOBAL_PAX} bytes`);
      }
      if (h.size > MAX_EXTENDED_HEADER) throw corrupt(offset, `an extended header larger than ${MAX_EXTENDED_HEADER} bytes`);
      // A GNU long name is refused before it is buffered; its NUL terminator may follow the name.
      if ((h.flag === 'L' || h.flag === 'K') && h.size > MAX_NAME_BYTES + 1) throw longName(offset);
      if (h.size > 0) this.state = { kind: 'extended', flag: h.flag, data: Buffer.alloc(h.size), filled: 0, at: offset };
      else this.extended(h.flag, Buffer.alloc(0), offset);
      return;
    }
    if (++this.members > MAX_MEMBERS) throw new VmhubError('InvalidImage', `archive holds more than ${MAX_MEMBERS} members`);
    const pax = (key: string) => this.pax.get(key) ?? this.globalPax.get(key);
    const name = pax('path') ?? this.longName ?? h.name;
    if (Buffer.byteLength(name) > MAX_NAME_BYTES) throw longName(offset);
    const paxSize = pax('size');
    if (paxSize !== undefined && !/^\d+$/.test(paxSize)) throw corrupt(offset, 'a PAX size that is not a number');
    const size = paxSize !== undefined ? Number(paxSize) : h.size;
    if (!Number.isSafeInteger(size)) throw corrupt(offset, 'a member size too large');
    this.pax = new Map();
    this.longName = undefined;
    const type = TYPES[h.flag] ?? `type ${JSON.stringify(h.flag)}`;
    const sink = await this.onEntry({ name, size, type: type === 'file' && name.endsWith('/') ? 'directory' : type });
    if (size > 0) this.state = { kind: 'data', sink, name, remaining: size };
    else await sink.end();
  }

  /** An extended header's content, now complete: it applies to the next member (or, `g`, to all that follow). */
  private extended(flag: string, data: Buffer, offset: number): void {
    if (flag === 'x') this.pax = parsePax(data, offset);
    else if (flag === 'g') for (const [k, v] of parsePax(data, offset)) this.globalPax.set(k, v);
    else if (flag === 'L') this.longName = cString(data, 0, data.length);
    this.toNextHeader();
  }
}
