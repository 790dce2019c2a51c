import { createHash, X509Certificate, type Hash } from 'node:crypto';
import { VmhubError } from '../shared/errors';
import type { OvfCertificateVerdict } from '../shared/ovf-policy';
import { parseManifest, type DigestAlgorithm, type ManifestEntry } from './manifest';
import { parseDescriptor } from './ovf/descriptor';
import type { OvfEnvelope } from './ovf/envelope';
import { checkManifestSignature, judgeChain, MAX_CERTIFICATE_BYTES, parseOvfCertificate } from './ovf-certificate';
import { describeOvf, type OvfMetadata } from './ovf/metadata';
import { TarReader, type TarEntry, type TarSink } from './tar-reader';
import { MAX_DESCRIPTOR_BYTES, quoted } from './xml';

/**
 * Walks an OVA (a tar archive: ustar, GNU and PAX headers) as its bytes stream past once: refuses unsafe
 * entries, parses the descriptor, and checks every file against the manifest while hashing it.
 *
 * The descriptor is expected first, as OVF requires; an archive with the descriptor later is accepted
 * too, because every entry is hashed as it passes (with all three manifest algorithms until the
 * manifest is known), so nothing has to be buffered but the descriptor and manifest themselves.
 * The manifest is the descriptor's: `<descriptor stem>.mf`.
 */
export type ManifestStatus = 'verified' | 'not-in-manifest' | 'no-manifest';

export interface OvaFile {
  name: string;
  size: number;
  role: 'descriptor' | 'manifest' | 'certificate' | 'disk' | 'file' | 'extra';
  digest?: { algorithm: DigestAlgorithm; value: string };
  /** Every member's SHA-256, whatever the manifest uses: what a publish signs (absent in versions catalogued before). */
  sha256?: string;
  manifest: ManifestStatus;
}

export interface OvaMetadata extends Omit<OvfMetadata, 'kind'> {
  kind: 'ova';
  archive: { descriptor: string; descriptorFirst: boolean; manifest?: string; files: OvaFile[] };
  /** The descriptor's certificate (`<stem>.cert`), judged against the trusted CAs the inspector was given. */
  certificate: OvfCertificateVerdict;
}

export interface OvaInspectOptions {
  /** PEM certificates of the CAs an OVF certificate may lead to (VMHUB_OVF_TRUSTED_CA_FILE). */
  trustedCas?: string[];
}

/** All `.mf` members read before the descriptor names its manifest share this bound, as one manifest does after. */
const MAX_MANIFEST_BYTES = 1024 * 1024;
const ALL: DigestAlgorithm[] = ['sha1', 'sha256', 'sha512'];

interface Entry {
  name: string;
  size: number;
  digests: Map<DigestAlgorithm, string>;
}

/** What makes a member name or an OVF file reference something other than a plain relative path. */
const UNSAFE_NAMES: Array<[(name: string) => boolean, string]> = [
  [(n) => n === '', 'it is empty'],
  [(n) => /[\0-\x1f\x7f]/.test(n), 'it holds a control character'],
  [(n) => /[\\?#]/.test(n), 'it holds a backslash, ? or #'],
  [(n) => /^[A-Za-z][A-Za-z0-9+.-]*:/.test(n), 'it is a URL or a drive path'],
  [(n) => n.startsWith('/'), 'it is absolute'],
  [(n) => n.split('/').some((part) => part === '' || part === '.' || part === '..'), 'it has an empty, . or .. segment'],
  [(n) => !decodable(n), 'its percent-encoding is malformed'],
  [
    (n) => /%(2e|2f|5c|25|[01][0-9a-f]|7f)/i.test(n),
    'its percent-encoding hides a dot, slash, backslash, % or control character',
  ],
];

function decodable(name: string): boolean {
  try {
    decodeURIComponent(name);
    return true;
  } catch {
    return false;
  }
}

/** Refuses a member name or OVF file reference that is not a plain relative path (see UNSAFE_NAMES). */
export function checkEntryName(name: string, what = 'archive entry'): void {
  const problem = UNSAFE_NAMES.find(([unsafe]) => unsafe(name))?.[1];
  if (problem) throw new VmhubError('InvalidImage', `${what} ${quoted(name)} has an unsafe path: ${problem}`);
}

/** `<stem><ext>` with the extension in any case: `a.ovf` has the manifest `a.mf` or `a.MF`. */
export function sibling(name: string, descriptor: string, ext: string): boolean {
  const stem = descriptor.replace(/\.ovf$/i, '');
  return name.length === stem.length + ext.length && name.startsWith(stem) && name.slice(stem.length).toLowerCase() === ext;
}

/** Collects a member of known size into one buffer, then hands it over. */
function collector(size: number, done: (bytes: Buffer) => void | Promise<void>): TarSink {
  const bytes = Buffer.alloc(size);
  let at = 0;
  return {
    update(chunk) {
      chunk.copy(bytes, at);
      at += chunk.length;
    },
    end: () => done(bytes),
  };
}

function checkDigest(listed: ManifestEntry, entry: Entry): void {
  const actual = entry.digests.get(listed.algorithm);
  if (actual !== listed.digest) {
    throw new VmhubError(
      'ManifestMismatch',
      `${quoted(listed.file)}: ${listed.algorithm.toUpperCase()} is ${actual}, the manifest says ${listed.digest}`,
    );
  }
}

export class OvaInspector {
  private readonly reader = new TarReader((entry) => this.onEntry(entry));
  private readonly names = new Set<string>();
  private readonly entries: Entry[] = [];
  private descriptor?: { name: string; index: number; envelope: OvfEnvelope };
  private manifest?: { name: string; bytes: Buffer; entries: Map<string, ManifestEntry> };
  /** `.cert` members: before the descriptor any, after it its siblings; all share one bound. */
  private readonly certificates: Array<{ name: string; bytes: Buffer }> = [];
  private certificateBytes = 0;
  /** `.mf` members that passed before the descriptor, one of which may turn out to be its manifest. */
  private readonly earlyManifests = new Map<string, Buffer>();
  private earlyManifestBytes = 0;

  constructor(private readonly options: OvaInspectOptions = {}) {}

  private onEntry(header: TarEntry): TarSink {
    const { name, size } = header;
    checkEntryName(header.type === 'directory' ? name.replace(/\/$/, '') : name);
    if (header.type !== 'file')
      throw new VmhubError('InvalidImage', `archive entry ${quoted(name)} is a ${header.type}, not a regular file`);
    if (this.names.has(name)) throw new VmhubError('InvalidImage', `archive holds ${quoted(name)} twice`);
    this.names.add(name);
    const lower = name.toLowerCase();
    if (lower.endsWith('.ovf') && !this.descriptor) {
      if (size > MAX_DESCRIPTOR_BYTES)
        throw new VmhubError('InvalidImage', `descriptor ${quoted(name)} is larger than ${MAX_DESCRIPTOR_BYTES} bytes`);
      return collector(size, (bytes) => {
        this.descriptor = { name, index: this.entries.length, envelope: parseDescriptor(bytes) };
        this.entries.push({ name, size, digests: digestsOf(bytes, this.algorithmsFor(name)) });
        for (const [early, text] of this.earlyManifests) if (sibling(early, name, '.mf')) this.adoptManifest(early, text);
        this.earlyManifests.clear();
      });
    }
    if (lower.endsWith('.mf') && !this.manifest && (!this.descriptor || sibling(name, this.descriptor.name, '.mf'))) {
      const budget = MAX_MANIFEST_BYTES - this.earlyManifestBytes;
      if (size > budget)
        throw new VmhubError('InvalidImage', `manifest ${quoted(name)} is larger than ${MAX_MANIFEST_BYTES} bytes`);
      return collector(size, (bytes) => {
        this.entries.push({ name, size, digests: digestsOf(bytes, this.algorithmsFor(name)) });
        if (this.descriptor) return this.adoptManifest(name, bytes);
        this.earlyManifests.set(name, bytes);
        this.earlyManifestBytes += size;
      });
    }
    // Every `.cert` that may be the descriptor's is kept, wherever it comes: the finish judges them all.
    if (lower.endsWith('.cert') && (!this.descriptor || sibling(name, this.descriptor.name, '.cert'))) {
      if (size > MAX_CERTIFICATE_BYTES - this.certificateBytes)
        throw new VmhubError('CertificateInvalid', `certificate ${quoted(name)} is larger than ${MAX_CERTIFICATE_BYTES} bytes`);
      this.certificateBytes += size;
      return collector(size, (bytes) => {
        this.entries.push({ name, size, digests: digestsOf(bytes, this.algorithmsFor(name)) });
        this.certificates.push({ name, bytes });
      });
    }
    const hashes = new Map<DigestAlgorithm, Hash>(this.algorithmsFor(name).map((a) => [a, createHash(a)]));
    return {
      update: (chunk) => {
        for (const h of hashes.values()) h.update(chunk);
      },
      end: () => {
        const entry = { name, size, digests: new Map([...hashes].map(([a, h]) => [a, h.digest('hex')])) };
        this.entries.push(entry);
        // A member the manifest already lists is judged now: a bad first disk fails before the rest is read.
        const listed = this.manifest?.entries.get(name);
        if (listed) checkDigest(listed, entry);
      },
    };
  }

  private adoptManifest(name: string, bytes: Buffer): void {
    this.manifest = { name, bytes, entries: new Map(parseManifest(bytes.toString('utf8'), name).map((e) => [e.file, e])) };
  }

  private algorithmsFor(name: string): DigestAlgorithm[] {
    if (!this.manifest) return ALL;
    // SHA-256 always, for the signed statement; the manifest's own algorithm too when it lists the member.
    const listed = this.manifest.entries.get(name);
    return listed && listed.algorithm !== 'sha256' ? [listed.algorithm, 'sha256'] : ['sha256'];
  }

  /** Feeds the next bytes of the archive. */
  async write(chunk: Buffer): Promise<void> {
    await this.reader.write(chunk);
  }

  async finish(): Promise<OvaMetadata> {
    this.reader.finish();
    return this.report();
  }

  private report(): OvaMetadata {
    if (!this.descriptor) throw new VmhubError('InvalidImage', 'archive holds no .ovf descriptor');
    const { envelope, name: descriptorName } = this.descriptor;
    const byName = new Map(this.entries.map((e) => [e.name, e]));
    for (const ref of envelope.files) {
      const entry = byName.get(ref.href);
      if (!entry) throw new VmhubError('InvalidImage', `descriptor refers to ${quoted(ref.href)}, which the archive lacks`);
      if (ref.size !== undefined && ref.size !== entry.size) {
        throw new VmhubError('InvalidImage', `${quoted(ref.href)} is ${entry.size} bytes, the descriptor says ${ref.size}`);
      }
    }
    const manifest = this.manifest;
    for (const m of manifest?.entries.values() ?? []) {
      const entry = byName.get(m.file);
      if (!entry) throw new VmhubError('ManifestMismatch', `manifest lists ${quoted(m.file)}, which the archive lacks`);
      checkDigest(m, entry);
    }
    const referenced = new Set(envelope.files.map((f) => f.href));
    const hrefById = new Map(envelope.files.map((f) => [f.id, f.href]));
    const diskFiles = new Set(envelope.disks.map((d) => d.fileRef !== undefined && hrefById.get(d.fileRef)));
    const files: OvaFile[] = this.entries.map((e) => {
      const listed = manifest?.entries.get(e.name);
      const algorithm: DigestAlgorithm = listed?.algorithm ?? 'sha256';
      const value = e.digests.get(algorithm);
      const role: OvaFile['role'] =
        e.name === descriptorName
          ? 'descriptor'
          : e.name === manifest?.name
            ? 'manifest'
            : sibling(e.name, descriptorName, '.cert')
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
        sha256: e.digests.get('sha256'),
        manifest: !manifest ? 'no-manifest' : listed ? 'verified' : 'not-in-manifest',
      };
    });
    const { kind: _ovf, ...described } = describeOvf(envelope);
    return {
      ...described,
      kind: 'ova',
      archive: { descriptor: descriptorName, descriptorFirst: this.descriptor.index === 0, manifest: manifest?.name, files },
      certificate: this.judgeCertificate(descriptorName),
    };
  }

  /**
   * The descriptor's one certificate must sign the manifest's bytes (CertificateInvalid otherwise, and for
   * two certificates); its chain is then judged.
   */
  private judgeCertificate(descriptor: string): OvfCertificateVerdict {
    const { manifest } = this;
    const mine = this.certificates.filter((c) => sibling(c.name, descriptor, '.cert'));
    // Which of two certificates a vCenter would read is not for vmhub to guess.
    if (mine.length > 1) {
      throw new VmhubError(
        'CertificateInvalid',
        `the package holds ${mine.length} certificates: ${mine.map((c) => quoted(c.name)).join(', ')}`,
      );
    }
    const certificate = mine[0];
    if (!certificate) return { status: 'none' };
    if (!manifest) {
      throw new VmhubError('CertificateInvalid', `certificate ${quoted(certificate.name)} signs a manifest the package lacks`);
    }
    const cert = parseOvfCertificate(certificate.bytes, certificate.name);
    checkManifestSignature(cert, certificate.name, manifest);
    return judgeChain(
      cert.chain,
      (this.options.trustedCas ?? []).map((pem) => new X509Certificate(pem)),
      new Date(),
      cert.algorithm,
    );
  }
}

/**
 * Refuses, at publish, an OVA with members its descriptor does not reference (a second descriptor, another
 * manifest, stray files): a content library would hold them beside the descriptor vmhub catalogued.
 */
export function refuseUnreferenced(metadata: OvaMetadata): void {
  const extra = metadata.archive.files.filter((f) => f.role === 'extra').map((f) => quoted(f.name));
  if (extra.length === 0) return;
  const shown = extra.length > 5 ? [...extra.slice(0, 5), `and ${extra.length - 5} more`] : extra;
  throw new VmhubError(
    'UnreferencedMember',
    `the OVA holds ${shown.join(', ')}, which descriptor ${quoted(metadata.archive.descriptor)} does not reference; ` +
      'an OVA may hold only its descriptor, its manifest and certificate, and the files the descriptor references',
  );
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
): Promise<Buffer | undefined> {
  if (sizeBytes < 512) return undefined;
  const h = await read(0, 512);
  const field = (from: number, to: number) => h.toString('utf8', from, to).replace(/\0.*$/s, '');
  const type = field(156, 157);
  const name = field(345, 500) ? `${field(345, 500)}/${field(0, 100)}` : field(0, 100);
  const size = parseInt(field(124, 136).trim(), 8);
  if ((type !== '0' && type !== '') || !name.toLowerCase().endsWith('.ovf') || !Number.isSafeInteger(size)) return undefined;
  if (size > MAX_DESCRIPTOR_BYTES || 512 + size > sizeBytes) return undefined;
  return read(512, 512 + size);
}
