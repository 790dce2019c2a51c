import { createHash, type Hash } from 'node:crypto';
import tar from 'tar-stream';
import { VmhubError } from '../errors';
import { parseManifest, type DigestAlgorithm, type ManifestEntry } from './manifest';
import { parseOvf, type OvfEnvelope } from './ovf/envelope';
import { describeOvf, type OvfMetadata } from './ovf/metadata';
import { MAX_DESCRIPTOR_BYTES } from './xml';

/**
 * Walks an OVA (a tar archive: ustar, GNU and PAX headers) as its bytes stream past once: refuses unsafe
 * entries, parses the descriptor, and checks every file against the manifest while hashing it.
 *
 * The descriptor is expected first, as OVF requires; an archive with the descriptor later is accepted
 * too, because every entry is hashed as it passes (with all three manifest algorithms until the
 * manifest is known), so nothing has to be buffered but the descriptor and manifest themselves.
 */
export type ManifestStatus = 'verified' | 'not-in-manifest' | 'no-manifest';

export interface OvaFile {
  name: string;
  size: number;
  role: 'descriptor' | 'manifest' | 'certificate' | 'disk' | 'file' | 'extra';
  digest?: { algorithm: DigestAlgorithm; value: string };
  manifest: ManifestStatus;
}

export interface OvaMetadata extends Omit<OvfMetadata, 'kind'> {
  kind: 'ova';
  archive: { descriptor: string; descriptorFirst: boolean; manifest?: string; files: OvaFile[] };
}

const MAX_MANIFEST_BYTES = 1024 * 1024;
const ALL: DigestAlgorithm[] = ['sha1', 'sha256', 'sha512'];

interface Entry {
  name: string;
  size: number;
  digests: Map<DigestAlgorithm, string>;
}

export function checkEntryName(name: string): void {
  const bad =
    name === '' ||
    name.includes('\0') ||
    name.includes('\\') ||
    name.startsWith('/') ||
    /^[A-Za-z]:/.test(name) ||
    name.split('/').some((part) => part === '..' || part === '.');
  if (bad) throw new VmhubError('InvalidImage', `archive entry ${JSON.stringify(name.slice(0, 200))} has an unsafe path`);
}

async function collect(stream: AsyncIterable<Buffer>, limit: number, what: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    size += chunk.length;
    if (size > limit) throw new VmhubError('InvalidImage', `${what} is larger than ${limit} bytes`);
    parts.push(chunk);
  }
  return Buffer.concat(parts);
}

export class OvaInspector {
  private readonly extract = tar.extract();
  private readonly finished: Promise<void>;
  private failure: unknown;
  private readonly entries: Entry[] = [];
  private descriptor?: { name: string; index: number; envelope: OvfEnvelope };
  private manifest?: { name: string; entries: ManifestEntry[] };

  constructor() {
    this.extract.on('entry', (header, stream, next) => {
      // A failed entry is reported once, through the archive; its own stream only echoes it.
      stream.on('error', () => undefined);
      this.onEntry(header, stream as AsyncIterable<Buffer>).then(
        () => next(),
        (err: unknown) => {
          this.failure ??= err;
          stream.resume();
          next(err as Error);
        },
      );
    });
    this.finished = new Promise<void>((resolve, reject) => {
      this.extract.once('finish', resolve);
      this.extract.on('error', (err) => {
        this.failure ??= err;
        reject(this.failure);
      });
    });
    this.finished.catch(() => undefined);
  }

  private async onEntry(header: tar.Header, stream: AsyncIterable<Buffer>): Promise<void> {
    checkEntryName(header.name);
    if (header.type !== 'file' && header.type !== 'contiguous-file') {
      throw new VmhubError('InvalidImage', `archive entry ${header.name} is a ${header.type}, not a regular file`);
    }
    if (this.entries.some((e) => e.name === header.name)) {
      throw new VmhubError('InvalidImage', `archive holds ${header.name} twice`);
    }
    const size = header.size ?? 0;
    const lower = header.name.toLowerCase();
    if (lower.endsWith('.ovf') && !this.descriptor) {
      if (size > MAX_DESCRIPTOR_BYTES)
        throw new VmhubError('InvalidImage', `descriptor ${header.name} is larger than ${MAX_DESCRIPTOR_BYTES} bytes`);
      const bytes = await collect(stream, MAX_DESCRIPTOR_BYTES, `descriptor ${header.name}`);
      this.descriptor = { name: header.name, index: this.entries.length, envelope: await parseOvf(bytes.toString('utf8')) };
      this.entries.push({ name: header.name, size, digests: digestsOf(bytes, this.algorithmsFor(header.name)) });
      return;
    }
    if (lower.endsWith('.mf') && !this.manifest) {
      const bytes = await collect(stream, MAX_MANIFEST_BYTES, `manifest ${header.name}`);
      this.manifest = { name: header.name, entries: parseManifest(bytes.toString('utf8'), header.name) };
      this.entries.push({ name: header.name, size, digests: new Map() });
      return;
    }
    const hashes = new Map<DigestAlgorithm, Hash>(this.algorithmsFor(header.name).map((a) => [a, createHash(a)]));
    let seen = 0;
    for await (const chunk of stream) {
      seen += chunk.length;
      for (const h of hashes.values()) h.update(chunk);
    }
    if (seen !== size) throw new VmhubError('InvalidImage', `archive is truncated inside ${header.name}`);
    this.entries.push({ name: header.name, size, digests: new Map([...hashes].map(([a, h]) => [a, h.digest('hex')])) });
  }

  private algorithmsFor(name: string): DigestAlgorithm[] {
    if (!this.manifest) return ALL;
    const listed = this.manifest.entries.find((e) => e.file === name);
    return listed ? [listed.algorithm] : ['sha256'];
  }

  /** Feeds the next bytes of the archive, waiting while the walker catches up. */
  async write(chunk: Buffer): Promise<void> {
    if (this.failure) throw this.failure;
    if (!this.extract.write(chunk)) {
      await Promise.race([new Promise<void>((resolve) => this.extract.once('drain', () => resolve())), this.finished]);
    }
    if (this.failure) throw this.failure;
  }

  async finish(): Promise<OvaMetadata> {
    (this.extract as unknown as { end(): void }).end();
    try {
      await this.finished;
    } catch (err) {
      if (err instanceof VmhubError) throw err;
      throw new VmhubError('InvalidImage', `archive is truncated or corrupt: ${(err as Error).message}`);
    }
    return this.report();
  }

  private report(): OvaMetadata {
    if (!this.descriptor) throw new VmhubError('InvalidImage', 'archive holds no .ovf descriptor');
    const { envelope, name: descriptorName } = this.descriptor;
    const byName = new Map(this.entries.map((e) => [e.name, e]));
    for (const ref of envelope.files) {
      const entry = byName.get(ref.href);
      if (!entry) throw new VmhubError('InvalidImage', `descriptor refers to ${ref.href}, which the archive lacks`);
      if (ref.size !== undefined && ref.size !== entry.size) {
        throw new VmhubError('InvalidImage', `${ref.href} is ${entry.size} bytes, the descriptor says ${ref.size}`);
      }
    }
    const manifest = this.manifest;
    if (manifest) {
      for (const m of manifest.entries) {
        const entry = byName.get(m.file);
        if (!entry) throw new VmhubError('ManifestMismatch', `manifest lists ${m.file}, which the archive lacks`);
        const actual = entry.digests.get(m.algorithm);
        if (actual !== m.digest) {
          throw new VmhubError(
            'ManifestMismatch',
            `${m.file}: ${m.algorithm.toUpperCase()} is ${actual}, the manifest says ${m.digest}`,
          );
        }
      }
    }
    const referenced = new Set(envelope.files.map((f) => f.href));
    const diskFiles = new Set(envelope.disks.map((d) => envelope.files.find((f) => f.id === d.fileRef)?.href));
    const files: OvaFile[] = this.entries.map((e) => {
      const listed = manifest?.entries.find((m) => m.file === e.name);
      const algorithm: DigestAlgorithm = listed?.algorithm ?? 'sha256';
      const value = e.digests.get(algorithm);
      const lower = e.name.toLowerCase();
      const role: OvaFile['role'] =
        e.name === descriptorName
          ? 'descriptor'
          : e.name === manifest?.name
            ? 'manifest'
            : lower.endsWith('.cert')
              ? 'certificate'
              : diskFiles.has(e.name)
                ? 'disk'
                : referenced.has(e.name)
                  ? 'file'
                  : 'extra';
      return {
        name: e.name,
        size: e.size,
        role,
        digest: value ? { algorithm, value } : undefined,
        manifest: !manifest ? 'no-manifest' : listed ? 'verified' : 'not-in-manifest',
      };
    });
    const { kind: _ovf, ...described } = describeOvf(envelope);
    return {
      ...described,
      kind: 'ova',
      archive: { descriptor: descriptorName, descriptorFirst: this.descriptor.index === 0, manifest: manifest?.name, files },
    };
  }
}

function digestsOf(bytes: Buffer, algorithms: DigestAlgorithm[]): Map<DigestAlgorithm, string> {
  return new Map(algorithms.map((a) => [a, createHash(a).update(bytes).digest('hex')]));
}

/**
 * The descriptor of an OVA whose first entry is the .ovf (as OVF requires), read with two ranged reads
 * and without walking the archive; undefined when the archive starts otherwise.
 */
export async function peekDescriptor(
  read: (start: number, end: number) => Promise<Buffer>,
  sizeBytes: number,
): Promise<string | undefined> {
  if (sizeBytes < 512) return undefined;
  const h = await read(0, 512);
  const field = (from: number, to: number) => h.toString('utf8', from, to).replace(/\0.*$/s, '');
  const type = field(156, 157);
  const name = field(345, 500) ? `${field(345, 500)}/${field(0, 100)}` : field(0, 100);
  const size = parseInt(field(124, 136).trim(), 8);
  if ((type !== '0' && type !== '') || !name.toLowerCase().endsWith('.ovf') || !Number.isSafeInteger(size)) return undefined;
  if (size > MAX_DESCRIPTOR_BYTES || 512 + size > sizeBytes) return undefined;
  return (await read(512, 512 + size)).toString('utf8');
}
