import { X509Certificate, verify } from 'node:crypto';
import fs from 'node:fs';
import { VmhubError } from '../shared/errors';
import type { CertificateStatus, OvfCertificateVerdict } from '../shared/ovf-policy';
import type { DigestAlgorithm } from './manifest';
import { quoted } from './xml';

/**
 * An OVF package's certificate (`<stem>.cert`) as ovftool writes it: a line `SHA256(<stem>.mf)= <hex>`
 * (SHA1 and SHA512 too) holding the signature of the manifest's bytes, then the signing certificate and
 * its chain as PEM blocks, leaf first. The signature is checked against the manifest here; whether the
 * chain leads to a CA the operator trusts is judged separately (judgeChain), because a tampered file is a
 * broken image while an untrusted one is a fact about who signed it.
 */
export type { CertificateStatus, OvfCertificateVerdict };

export interface OvfCertificate {
  algorithm: DigestAlgorithm;
  /** The manifest the signature is of, as the file names it. */
  manifest: string;
  signature: Buffer;
  /** Leaf first. */
  chain: X509Certificate[];
}

/** A certificate file with a long chain is a few KiB; anything far larger is not one. */
export const MAX_CERTIFICATE_BYTES = 256 * 1024;

const SIGNATURE_LINE = /^(SHA1|SHA256|SHA512)\s*\((.+)\)\s*=\s*([0-9a-fA-F]+)$/;
const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]*?-----END CERTIFICATE-----/g;

function invalid(name: string, problem: string): VmhubError {
  return new VmhubError('CertificateInvalid', `certificate ${quoted(name)} ${problem}`);
}

/** The PEM certificates of a text that holds nothing else but white space; `fail` throws for a problem. */
export function parsePemCertificates(text: string, fail: (problem: string) => never): X509Certificate[] {
  const blocks = text.match(PEM_BLOCK) ?? [];
  if (text.replace(PEM_BLOCK, '').trim() !== '') fail('holds text other than PEM certificates');
  if (blocks.length === 0) fail('holds no PEM certificate');
  return blocks.map((pem, i) => {
    try {
      return new X509Certificate(pem);
    } catch (err) {
      return fail(`has a certificate (#${i + 1}) that does not parse: ${(err as Error).message}`);
    }
  });
}

/** Parses a `.cert` member; CertificateInvalid when it is not one. */
export function parseOvfCertificate(bytes: Buffer, name: string): OvfCertificate {
  const text = bytes.toString('utf8');
  const firstBreak = text.search(/\r?\n/);
  const first = (firstBreak < 0 ? text : text.slice(0, firstBreak)).trim();
  const m = SIGNATURE_LINE.exec(first);
  if (!m) throw invalid(name, 'does not start with a line "ALGORITHM(manifest)= signature"');
  if (m[3].length % 2 !== 0) throw invalid(name, 'has a signature of an odd number of hex digits');
  const chain = parsePemCertificates(firstBreak < 0 ? '' : text.slice(firstBreak), (problem) => {
    throw invalid(name, problem);
  });
  return { algorithm: m[1].toLowerCase() as DigestAlgorithm, manifest: m[2], signature: Buffer.from(m[3], 'hex'), chain };
}

/**
 * Checks that the certificate signs these very manifest bytes with its leaf's key; CertificateInvalid
 * otherwise (another manifest, edited bytes, a signature by another key).
 */
export function checkManifestSignature(cert: OvfCertificate, name: string, manifest: { name: string; bytes: Buffer }): void {
  if (cert.manifest !== manifest.name) {
    throw invalid(name, `signs ${quoted(cert.manifest)}, not the package's manifest ${quoted(manifest.name)}`);
  }
  let good: boolean;
  try {
    good = verify(cert.algorithm, manifest.bytes, cert.chain[0].publicKey, cert.signature);
  } catch (err) {
    throw invalid(name, `has a signature that cannot be checked: ${(err as Error).message}`);
  }
  if (!good) throw invalid(name, `holds a signature that is not of ${quoted(manifest.name)} by its certificate's key`);
}

/** A distinguished name on one line: `CN=a, O=b`. */
function oneLine(dn: string): string {
  return dn.split('\n').filter(Boolean).join(', ');
}

function validAt(c: X509Certificate, now: Date): boolean {
  return new Date(c.validFrom) <= now && now <= new Date(c.validTo);
}

/** `issuer` is a CA whose key signed `c`. */
function issuedBy(c: X509Certificate, issuer: X509Certificate): boolean {
  return issuer.ca && c.checkIssued(issuer) && c.verify(issuer.publicKey);
}

/**
 * The verdict on a chain whose leaf signed the manifest: `failed` when a certificate is outside its
 * validity or one does not issue the next, `verified` when a certificate of the chain is a trusted CA
 * or is issued by one (valid now), else `untrusted`.
 */
export function judgeChain(chain: X509Certificate[], trusted: X509Certificate[], now = new Date()): OvfCertificateVerdict {
  const leaf = chain[0];
  const facts = { subject: oneLine(leaf.subject), issuer: oneLine(leaf.issuer), notAfter: new Date(leaf.validTo).toISOString() };
  const verdict = (status: CertificateStatus, reason?: string) => ({ status, ...facts, ...(reason ? { reason } : {}) });
  const stale = chain.findIndex((c) => !validAt(c, now));
  if (stale >= 0) {
    const c = chain[stale];
    return verdict('failed', `certificate #${stale + 1} (${oneLine(c.subject)}) is valid from ${c.validFrom} to ${c.validTo}`);
  }
  for (let i = 0; i + 1 < chain.length; i++) {
    if (!issuedBy(chain[i], chain[i + 1]))
      return verdict('failed', `certificate #${i + 1} is not issued by the next one in the file`);
  }
  const anchors = trusted.filter((t) => validAt(t, now));
  const anchored = chain.some((c) => anchors.some((t) => t.fingerprint256 === c.fingerprint256 || issuedBy(c, t)));
  if (anchored) return verdict('verified');
  return verdict(
    'untrusted',
    `no trusted CA issued it (${trusted.length === 0 ? 'none is configured' : `of ${trusted.length} configured`})`,
  );
}

/** The trusted CAs' PEM text from VMHUB_OVF_TRUSTED_CA_FILE (none without it); InvalidInput when it holds no certificate. */
export async function loadTrustedCas(file: string | undefined): Promise<string[]> {
  if (file === undefined) return [];
  const text = await fs.promises.readFile(file, 'utf8');
  const certs = parsePemCertificates(text, (problem) => {
    throw new VmhubError('InvalidInput', `VMHUB_OVF_TRUSTED_CA_FILE ${file} ${problem}`);
  });
  return certs.map((c) => c.toString());
}
