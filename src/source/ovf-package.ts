import path from 'node:path';
import { VmhubError } from '../errors';
import { checkEntryName } from '../images/ova';
import { parseOvf } from '../images/ovf/envelope';
import { MAX_DESCRIPTOR_BYTES } from '../images/xml';
import { END_OF_ARCHIVE, entryHeader, padded } from '../images/tar-header';
import { openSource, resolveSource, type ImageSource, type SourceRef } from './source';

/**
 * An OVF package (a descriptor beside the files it references, and its manifest and certificate when
 * present) read as the OVA that holds them: descriptor first, then manifest, certificate and files in
 * the descriptor's order. The archive is never written anywhere; its bytes are computed on demand, so
 * it can be staged in parallel ranges like any other image.
 */
type Part = { length: number } & ({ bytes: Buffer } | { source: ImageSource });
type Segment = Part & { offset: number };

export class OvfPackageSource implements ImageSource {
  private constructor(
    readonly ref: SourceRef,
    private readonly segments: Segment[],
    readonly sizeBytes: number,
    readonly entries: string[],
  ) {}

  static async open(descriptor: ImageSource, roots: string[], signal?: AbortSignal): Promise<OvfPackageSource> {
    if (descriptor.sizeBytes > MAX_DESCRIPTOR_BYTES) {
      throw new VmhubError('InvalidImage', `descriptor is larger than ${MAX_DESCRIPTOR_BYTES} bytes`);
    }
    const text = (await descriptor.read(0, descriptor.sizeBytes, signal)).toString('utf8');
    const envelope = await parseOvf(text);
    const base = refName(descriptor.ref);
    const stem = base.replace(/\.ovf$/i, '');
    const members: Array<{ name: string; source: ImageSource }> = [{ name: base, source: descriptor }];
    const opened: ImageSource[] = [];
    try {
      for (const [name, optional] of [
        [`${stem}.mf`, true],
        [`${stem}.cert`, true],
        ...envelope.files.map((f) => [f.href, false] as const),
      ] as const) {
        checkEntryName(name);
        const sibling = await openSibling(descriptor.ref, name, roots, optional, signal);
        if (!sibling) continue;
        opened.push(sibling);
        members.push({ name, source: sibling });
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
      const head = entryHeader(m.name, m.source.sizeBytes);
      add({ length: head.length, bytes: head });
      add({ length: m.source.sizeBytes, source: m.source });
      const pad = padded(m.source.sizeBytes) - m.source.sizeBytes;
      if (pad > 0) add({ length: pad, bytes: Buffer.alloc(pad) });
    }
    add({ length: END_OF_ARCHIVE.length, bytes: END_OF_ARCHIVE });
    return new OvfPackageSource(
      descriptor.ref,
      segments,
      offset,
      members.map((m) => m.name),
    );
  }

  async read(start: number, end: number, signal?: AbortSignal): Promise<Buffer> {
    const parts: Buffer[] = [];
    for (const s of this.segments) {
      const from = Math.max(start, s.offset);
      const to = Math.min(end, s.offset + s.length);
      if (from >= to) continue;
      parts.push(
        'bytes' in s
          ? s.bytes.subarray(from - s.offset, to - s.offset)
          : await s.source.read(from - s.offset, to - s.offset, signal),
      );
    }
    return Buffer.concat(parts);
  }

  async *chunks(start: number, end: number, signal?: AbortSignal): AsyncIterable<Buffer> {
    const step = 4 * 1024 * 1024;
    for (let at = start; at < end; at += step) yield await this.read(at, Math.min(at + step, end), signal);
  }

  async close(): Promise<void> {
    await Promise.all(
      this.segments.filter((s): s is Segment & { source: ImageSource } => 'source' in s).map((s) => s.source.close()),
    );
  }
}

function refName(ref: SourceRef): string {
  return ref.kind === 'file' ? path.basename(ref.path) : decodeURIComponent(path.posix.basename(new URL(ref.url).pathname));
}

async function openSibling(
  descriptor: SourceRef,
  name: string,
  roots: string[],
  optional: boolean,
  signal?: AbortSignal,
): Promise<ImageSource | undefined> {
  try {
    const ref: SourceRef =
      descriptor.kind === 'file'
        ? resolveSource(path.join(path.dirname(descriptor.path), name), roots)
        : { kind: 'http', url: new URL(name, descriptor.url).toString() };
    return await openSource(ref, signal);
  } catch (err) {
    if (optional && err instanceof VmhubError && err.type === 'InvalidSource') return undefined;
    if (err instanceof VmhubError && err.type === 'InvalidSource') {
      throw new VmhubError('InvalidImage', `OVF package lacks ${name}, which its descriptor refers to`);
    }
    throw err;
  }
}
