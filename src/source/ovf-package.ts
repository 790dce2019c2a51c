import { createHash } from 'node:crypto';
import path from 'node:path';
import { VmhubError } from '../shared/errors';
import { checkEntryName } from '../images/ova';
import { MAX_DESCRIPTOR_BYTES, quoted } from '../images/xml';
import { END_OF_ARCHIVE, entryHeader, padded } from '../images/tar-header';
import { hashPool } from '../storage/hashing';
import { openSource } from './open';
import { MissingSource, resolveSource, type ImageSource, type OpenOptions, type SourceRef } from './source';

/**
 * An OVF package (a descriptor beside the files it references, and its manifest and certificate when
 * present) read as the OVA that holds them: descriptor first, then manifest, certificate and files in
 * the descriptor's order. The archive is never written anywhere; its bytes are computed on demand, so
 * it can be staged in parallel ranges like any other image. The descriptor's bytes are the ones read
 * and parsed at open (on a hashing thread, once per content in the process), kept in memory (at most
 * MAX_DESCRIPTOR_BYTES).
 */
type Part = { length: number } & ({ bytes: Buffer } | { source: ImageSource });
type Segment = Part & { offset: number };

export class OvfPackageSource implements ImageSource {
  private constructor(
    readonly ref: SourceRef,
    private readonly segments: Segment[],
    private readonly sources: ImageSource[],
    readonly sizeBytes: number,
    readonly version: string,
  ) {}

  /** Opens the files beside the descriptor; the package then owns the descriptor and closes it with the rest. */
  static async open(descriptor: ImageSource, roots: string[], options: OpenOptions = {}): Promise<OvfPackageSource> {
    if (descriptor.sizeBytes > MAX_DESCRIPTOR_BYTES) {
      throw new VmhubError('InvalidImage', `descriptor is larger than ${MAX_DESCRIPTOR_BYTES} bytes`);
    }
    const text = await descriptor.read(0, descriptor.sizeBytes, options.signal);
    const envelope = await hashPool().descriptor(text);
    const base = refName(descriptor.ref);
    checkEntryName(base, 'descriptor');
    const stem = base.replace(/\.ovf$/i, '');
    const members: Array<{ name: string; part: Part; version?: string }> = [
      { name: base, part: { length: text.length, bytes: text }, version: descriptor.version },
    ];
    const names = new Set([base]);
    const opened: ImageSource[] = [];
    try {
      for (const [name, optional] of [
        [`${stem}.mf`, true],
        [`${stem}.cert`, true],
        ...envelope.files.map((f) => [f.href, false] as const),
      ] as const) {
        checkEntryName(name, 'file reference');
        if (names.has(name))
          throw new VmhubError('InvalidImage', `descriptor references ${quoted(name)}, which is already in the package`);
        names.add(name);
        const sibling = await openSibling(descriptor.ref, name, roots, optional, options);
        if (!sibling) continue;
        opened.push(sibling);
        members.push({ name, part: { length: sibling.sizeBytes, source: sibling }, version: sibling.version });
      }
    } catch (err) {
      await Promise.all(opened.map((s) => s.close()));
      throw err;
    }
    const segments: Segment[] = [];
    let offset = 0;
    const add = (segment: Part) => {
      segments.push({ ...segment, offset });
      offset += segment.length;
    };
    for (const m of members) {
      const head = entryHeader(m.name, m.part.length);
      add({ length: head.length, bytes: head });
      add(m.part);
      const pad = padded(m.part.length) - m.part.length;
      if (pad > 0) add({ length: pad, bytes: Buffer.alloc(pad) });
    }
    add({ length: END_OF_ARCHIVE.length, bytes: END_OF_ARCHIVE });
    // The package is the version of all its members together.
    const version = createHash('sha256')
      .update(JSON.stringify(members.map((m) => [m.name, m.part.length, m.version ?? null])))
      .digest('hex');
    return new OvfPackageSource(descriptor.ref, segments, [descriptor, ...opened], offset, `package:${version}`);
  }

  async read(start: number, end: number, signal?: AbortSignal, into?: Buffer): Promise<Buffer> {
    const buf = into ?? Buffer.allocUnsafe(end - start);
    let filled = 0;
    for (const s of this.segments) {
      const from = Math.max(start, s.offset);
      const to = Math.min(end, s.offset + s.length);
      if (from >= to) continue;
      const target = buf.subarray(from - start, to - start);
      if ('bytes' in s) s.bytes.copy(target, 0, from - s.offset, to - s.offset);
      else await s.source.read(from - s.offset, to - s.offset, signal, target);
      filled += to - from;
    }
    if (filled !== end - start || buf.length !== end - start) {
      throw new RangeError(`a read of [${start}, ${end}) into ${buf.length} bytes from a package of ${this.sizeBytes}`);
    }
    return buf;
  }

  async close(): Promise<void> {
    await Promise.all(this.sources.map((s) => s.close()));
  }
}

/** The descriptor's own name: a file's base name, or a URL's last path segment decoded. */
function refName(ref: SourceRef): string {
  if (ref.kind === 'file') return path.basename(ref.path);
  try {
    return decodeURIComponent(path.posix.basename(new URL(ref.url).pathname));
  } catch {
    throw new VmhubError('InvalidSource', 'the descriptor URL has a malformed percent-encoding');
  }
}

/**
 * A file the descriptor references, beside it: in the same repository directory, or on the same
 * origin under the same URL path. Only a missing optional file (manifest, certificate) is skipped;
 * a file that may not be read fails the package as it would fail the descriptor.
 */
async function openSibling(
  descriptor: SourceRef,
  name: string,
  roots: string[],
  optional: boolean,
  options: OpenOptions,
): Promise<ImageSource | undefined> {
  try {
    return await openSource(siblingRef(descriptor, name, roots), options);
  } catch (err) {
    if (!(err instanceof MissingSource)) throw err;
    if (optional) return undefined;
    throw new VmhubError('InvalidImage', `OVF package lacks ${quoted(name)}, which its descriptor refers to`);
  }
}

function siblingRef(descriptor: SourceRef, name: string, roots: string[]): SourceRef {
  if (descriptor.kind === 'file') return resolveSource(path.join(path.dirname(descriptor.path), name), roots);
  const base = new URL(descriptor.url);
  const url = new URL(name, base);
  const directory = base.pathname.slice(0, base.pathname.lastIndexOf('/') + 1);
  if (url.origin !== base.origin || !url.pathname.startsWith(directory) || url.search !== '' || url.hash !== '') {
    throw new VmhubError('InvalidImage', `file reference ${quoted(name)} leaves the descriptor's directory`);
  }
  return { kind: 'http', url: url.href };
}
