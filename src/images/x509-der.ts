import type { X509Certificate } from 'node:crypto';

/**
 * The few facts of an X.509 certificate that node's X509Certificate does not expose, read from its DER:
 * the algorithm its issuer signed it with, its keyUsage and its basicConstraints' pathLenConstraint.
 */
export interface CertificateFacts {
  /** The signatureAlgorithm OID after the TBSCertificate. */
  signatureOid: string;
  /** The hash inside an RSASSA-PSS signature's parameters (SHA-1 when they leave it out, as RFC 4055 says). */
  pssHashOid?: string;
  /** The keyUsage bits when the extension is present. */
  keyUsage?: { digitalSignature: boolean; keyCertSign: boolean };
  pathLen?: number;
}

interface Tlv {
  tag: number;
  start: number;
  end: number;
}

const RSA_PSS = '1.2.840.113549.1.1.10';
const SHA1 = '1.3.14.3.2.26';

function tlvAt(der: Buffer, at: number, limit: number): Tlv {
  if (at + 2 > limit) throw new Error('truncated DER');
  const first = der[at + 1];
  let length = first;
  let start = at + 2;
  if (first & 0x80) {
    const n = first & 0x7f;
    if (n === 0 || n > 4 || start + n > limit) throw new Error('unsupported DER length');
    length = 0;
    for (let i = 0; i < n; i++) length = length * 256 + der[start + i];
    start += n;
  }
  if (start + length > limit) throw new Error('truncated DER');
  return { tag: der[at], start, end: start + length };
}

function children(der: Buffer, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let at = parent.start; at < parent.end; at = out[out.length - 1].end) out.push(tlvAt(der, at, parent.end));
  return out;
}

function oidOf(der: Buffer, t: Tlv): string {
  if (t.tag !== 0x06 || t.end === t.start) throw new Error('expected an OBJECT IDENTIFIER');
  const arcs: number[] = [];
  let value = 0;
  for (let i = t.start; i < t.end; i++) {
    value = value * 128 + (der[i] & 0x7f);
    if ((der[i] & 0x80) === 0) {
      arcs.push(value);
      value = 0;
    }
  }
  const first = arcs[0] < 80 ? Math.floor(arcs[0] / 40) : 2;
  return [first, arcs[0] - first * 40, ...arcs.slice(1)].join('.');
}

function integerOf(der: Buffer, t: Tlv): number {
  let value = 0;
  for (let i = t.start; i < t.end; i++) value = value * 256 + der[i];
  return value;
}

/** The hash OID of RSASSA-PSS parameters: `[0] hashAlgorithm`, SHA-1 by default. */
function pssHash(der: Buffer, params: Tlv | undefined): string {
  const hash = params?.tag === 0x30 ? children(der, params).find((c) => c.tag === 0xa0) : undefined;
  if (!hash) return SHA1;
  return oidOf(der, children(der, children(der, hash)[0])[0]);
}

function readExtension(der: Buffer, ext: Tlv, facts: CertificateFacts): void {
  const parts = children(der, ext);
  const id = oidOf(der, parts[0]);
  const octets = parts[parts.length - 1];
  if (id === '2.5.29.15') {
    const bits = tlvAt(der, octets.start, octets.end);
    const first = bits.end - bits.start > 1 ? der[bits.start + 1] : 0;
    facts.keyUsage = { digitalSignature: (first & 0x80) !== 0, keyCertSign: (first & 0x04) !== 0 };
  } else if (id === '2.5.29.19') {
    const len = children(der, tlvAt(der, octets.start, octets.end)).find((c) => c.tag === 0x02);
    if (len) facts.pathLen = integerOf(der, len);
  }
}

/** The facts of a certificate node has already parsed; throws only on DER node would not have accepted. */
export function certificateFacts(cert: X509Certificate): CertificateFacts {
  const der = cert.raw;
  const [tbs, algorithm] = children(der, tlvAt(der, 0, der.length));
  const [oid, params] = children(der, algorithm);
  const facts: CertificateFacts = { signatureOid: oidOf(der, oid) };
  if (facts.signatureOid === RSA_PSS) facts.pssHashOid = pssHash(der, params);
  const extensions = children(der, tbs).find((c) => c.tag === 0xa3);
  for (const ext of extensions ? children(der, children(der, extensions)[0]) : []) readExtension(der, ext, facts);
  return facts;
}

/** Signature algorithms whose hash is MD2, MD5 or SHA-1, by OID. */
const WEAK_SIGNATURES = new Map([
  ['1.2.840.113549.1.1.2', 'md2WithRSAEncryption'],
  ['1.2.840.113549.1.1.4', 'md5WithRSAEncryption'],
  ['1.2.840.113549.1.1.5', 'sha1WithRSAEncryption'],
  ['1.3.14.3.2.29', 'sha1WithRSASignature'],
  ['1.2.840.10045.4.1', 'ecdsa-with-SHA1'],
  ['1.2.840.10040.4.3', 'dsa-with-sha1'],
]);

const MIN_KEY_BITS = 2048;

/** Why the signature an issuer put on a certificate is too weak to vouch for it, or undefined when it is not. */
export function signatureWeakness(facts: CertificateFacts): string | undefined {
  const weak = WEAK_SIGNATURES.get(facts.signatureOid);
  if (weak) return `is signed with ${weak}`;
  if (facts.pssHashOid === SHA1) return 'is signed with RSASSA-PSS over SHA-1';
  return undefined;
}

/** Why a certificate's key is too short to sign anything, or undefined when it is not. */
export function keyWeakness(cert: X509Certificate): string | undefined {
  const key = cert.publicKey;
  const bits = key.asymmetricKeyDetails?.modulusLength;
  const finite = key.asymmetricKeyType === 'rsa' || key.asymmetricKeyType === 'rsa-pss' || key.asymmetricKeyType === 'dsa';
  if (finite && bits !== undefined && bits < MIN_KEY_BITS) {
    return `has a ${bits}-bit ${key.asymmetricKeyType!.toUpperCase()} key (under ${MIN_KEY_BITS})`;
  }
  return undefined;
}
