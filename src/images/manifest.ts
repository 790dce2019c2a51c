import { VmhubError } from '../shared/errors';

/** An OVF manifest (.mf): one digest per file, in any of the shapes exporters write, LF or CRLF. */
export type DigestAlgorithm = 'sha1' | 'sha256' | 'sha512';

export interface ManifestEntry {
  file: string;
  algorithm: DigestAlgorithm;
  digest: string;
}

const DIGEST_LENGTH: Record<DigestAlgorithm, number> = { sha1: 40, sha256: 64, sha512: 128 };

/** `SHA256(f)= h`, `SHA1 (f)= h`, `SHA1 (f) = h` */
const LINE = /^(SHA1|SHA256|SHA512)\s*\((.+)\)\s*=\s*([0-9a-fA-F]+)\s*$/;

export function parseManifest(text: string, name = 'manifest'): ManifestEntry[] {
  const entries: ManifestEntry[] = [];
  const seen = new Set<string>();
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '') return;
    const m = LINE.exec(line);
    if (!m) throw new VmhubError('InvalidImage', `${name} line ${i + 1} is not "ALGORITHM(file)= digest"`);
    const algorithm = m[1].toLowerCase() as DigestAlgorithm;
    const digest = m[3].toLowerCase();
    if (digest.length !== DIGEST_LENGTH[algorithm]) {
      throw new VmhubError('InvalidImage', `${name} line ${i + 1}: a ${m[1]} digest has ${DIGEST_LENGTH[algorithm]} hex digits`);
    }
    if (seen.has(m[2])) throw new VmhubError('InvalidImage', `${name} lists ${m[2]} twice`);
    seen.add(m[2]);
    entries.push({ file: m[2], algorithm, digest });
  });
  return entries;
}
