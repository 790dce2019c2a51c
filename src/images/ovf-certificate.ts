import { X509Certificate, verify } from 'node:crypto';
import fs from 'node:fs';
import { VmhubError } from '../shared/errors';
import type { CertificateStatus, OvfCertificateVerdict } from '../shared/ovf-policy';
import type { DigestAlgorithm } from './manifest';
import { certificateFacts, keyWeakness, signatureWeakness, type CertificateFacts } from './x509-der';
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

/** `c` with the facts its DER holds that X509Certificate does not expose. */
interface Judged {
  cert: X509Certificate;
  facts: CertificateFacts;
}

const judged = (cert: X509Certificate): Judged => ({ cert, facts: certificateFacts(cert) });

/**
 * Why `issuer` did not issue `c` (undefined when it did): it must be a CA whose keyUsage, where present,
 * allows keyCertSign, whose pathLenConstraint allows the `below` CA certificates between it and the leaf
 * (the issued certificate's index in the chain), whose key is strong enough and signed `c`.
 */
function issuerProblem(c: X509Certificate, issuer: Judged, below: number): string | undefined {
  const { cert, facts } = issuer;
  // Before `ca`, which node also denies a certificate whose keyUsage lacks keyCertSign: the reason is told apart.
  if (facts.keyUsage && !facts.keyUsage.keyCertSign) return 'has a keyUsage that does not allow keyCertSign';
  if (!cert.ca) return 'is not a CA';
  if (facts.pathLen !== undefined && below > facts.pathLen)
    return `allows ${facts.pathLen} CA certificate(s) below it, and the chain has ${below}`;
  if (!c.checkIssued(cert) || !c.verify(cert.publicKey)) return 'did not sign it';
  return keyWeakness(cert);
}

/** Why the chain itself is unfit (weak, mis-used or mis-linked), or undefined. */
function chainProblem(chain: Judged[]): string | undefined {
  const leafUsage = chain[0].facts.keyUsage;
  if (leafUsage && !leafUsage.digitalSignature) return 'certificate #1 has a keyUsage that does not allow digitalSignature';
  for (const [i, { cert, facts }] of chain.entries()) {
    // A self-signed certificate's own signature vouches for nothing, whatever its algorithm.
    const selfSigned = cert.checkIssued(cert) && cert.verify(cert.publicKey);
    const weak = keyWeakness(cert) ?? (selfSigned ? undefined : signatureWeakness(facts));
    if (weak) return `certificate #${i + 1} (${oneLine(cert.subject)}) ${weak}`;
    const next = chain[i + 1];
    const problem = next && issuerProblem(cert, next, i);
    if (problem) return `certificate #${i + 1} is not issued by the next one in the file: #${i + 2} ${problem}`;
  }
  return undefined;
}

/**
 * The verdict on a chain whose leaf signed the manifest with `digest`: `failed` when the manifest's
 * signature uses SHA-1, a certificate is outside its validity, is signed with MD5 or SHA-1, has an RSA or
 * DSA key under 2048 bits, is used against its keyUsage or basicConstraints, or one does not issue the
 * next; `verified` when a certificate of the chain is a trusted CA or is issued by one (valid now), else
 * `untrusted`. Weak algorithms are a recorded `failed`, not an error: the package is intact, and an SDDC
 * that demands a verified certificate refuses it.
 */
export function judgeChain(
  chain: X509Certificate[],
  trusted: X509Certificate[],
  now = new Date(),
  digest: DigestAlgorithm = 'sha256',
): OvfCertificateVerdict {
  const leaf = chain[0];
  const facts = { subject: oneLine(leaf.subject), issuer: oneLine(leaf.issuer), notAfter: new Date(leaf.validTo).toISOString() };
  const verdict = (status: CertificateStatus, reason?: string) => ({ status, ...facts, ...(reason ? { reason } : {}) });
  if (digest === 'sha1') return verdict('failed', 'the manifest is signed with SHA-1');
  const stale = chain.findIndex((c) => !validAt(c, now));
  if (stale >= 0) {
    const c = chain[stale];
    return verdict('failed', `certificate #${stale + 1} (${oneLine(c.subject)}) is valid from ${c.validFrom} to ${c.validTo}`);
  }
  const links = chain.map(judged);
  const problem = chainProblem(links);
  if (problem) return verdict('failed', problem);
  const anchors = trusted.filter((t) => validAt(t, now)).map(judged);
  const anchored = chain.some((c, k) =>
    anchors.some((t) => t.cert.fingerprint256 === c.fingerprint256 || issuerProblem(c, t, k) === undefined),
  );
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
