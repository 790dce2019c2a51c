import { sign, verify, type KeyObject } from 'node:crypto';
import { VmhubError } from '../shared/errors';
import { keyIdOf, type TrustedKey } from './keys';

/**
 * DSSE (Dead Simple Signing Envelope, github.com/secure-systems-lab/dsse): the signature covers the
 * payload's type and bytes through PAE, so a payload cannot be re-read as another type. Any DSSE
 * implementation verifies these envelopes (test/provenance.test.ts checks one with securesystemslib).
 */
export interface Envelope {
  payloadType: string;
  /** base64 of the payload's bytes */
  payload: string;
  signatures: Array<{ keyid: string; sig: string }>;
}

/** DSSE's pre-authentication encoding: "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body. */
export function pae(payloadType: string, body: Buffer): Buffer {
  const type = Buffer.from(payloadType, 'utf8');
  return Buffer.concat([Buffer.from(`DSSEv1 ${type.length} `), type, Buffer.from(` ${body.length} `), body]);
}

/** Ed25519 signs the message itself; ECDSA P-256 signs its SHA-256 (DER signature), as DSSE's ecdsa-sha2-nistp256. */
function digestFor(key: KeyObject): string | null {
  return key.asymmetricKeyType === 'ed25519' ? null : 'sha256';
}

export function signEnvelope(payloadType: string, body: Buffer, privateKey: KeyObject): Envelope {
  const sig = sign(digestFor(privateKey), pae(payloadType, body), privateKey);
  return {
    payloadType,
    payload: body.toString('base64'),
    signatures: [{ keyid: keyIdOf(privateKey), sig: sig.toString('base64') }],
  };
}

/** An envelope must be no larger than this: it is read whole before its signature is checked. */
export const MAX_ENVELOPE_BYTES = 4 * 1024 * 1024;

/** Parses an envelope's JSON, refusing anything that is not exactly DSSE's shape. */
export function parseEnvelope(text: string): Envelope {
  if (Buffer.byteLength(text) > MAX_ENVELOPE_BYTES) throw unsigned(`the envelope is over ${MAX_ENVELOPE_BYTES} bytes`);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw unsigned('the envelope is not JSON');
  }
  const e = raw as Partial<Envelope> | null;
  const isString = (v: unknown): v is string => typeof v === 'string';
  if (
    !e ||
    typeof e !== 'object' ||
    !isString(e.payloadType) ||
    !isString(e.payload) ||
    !Array.isArray(e.signatures) ||
    !e.signatures.every((s) => s && typeof s === 'object' && isString(s.keyid) && isString(s.sig))
  ) {
    throw unsigned('the envelope is not a DSSE envelope (payloadType, payload, signatures[{keyid, sig}])');
  }
  return { payloadType: e.payloadType, payload: e.payload, signatures: e.signatures.map(({ keyid, sig }) => ({ keyid, sig })) };
}

export interface VerifiedEnvelope {
  body: Buffer;
  /** The trusted key whose signature verified. */
  keyid: string;
}

/**
 * The payload, once a signature by one of the trusted keys verifies over it. A signature whose key ID names
 * no trusted key is ignored, so an envelope signed by a new key and an old one verifies while either is trusted.
 */
export function verifyEnvelope(envelope: Envelope, expectedType: string, trusted: readonly TrustedKey[]): VerifiedEnvelope {
  if (envelope.payloadType !== expectedType) {
    throw untrusted(`the envelope's payload type is ${JSON.stringify(envelope.payloadType)}, not ${expectedType}`);
  }
  const body = Buffer.from(envelope.payload, 'base64');
  const message = pae(envelope.payloadType, body);
  for (const signature of envelope.signatures) {
    const key = trusted.find((k) => k.keyid === signature.keyid);
    if (key && verify(digestFor(key.publicKey), message, key.publicKey, Buffer.from(signature.sig, 'base64'))) {
      return { body, keyid: key.keyid };
    }
  }
  const named = envelope.signatures.map((s) => s.keyid).join(', ') || 'none';
  throw untrusted(
    trusted.length === 0
      ? 'this side trusts no signing key (VMHUB_TRUSTED_KEYS)'
      : `no signature verifies with a trusted key (signed by: ${named}; trusted: ${trusted.map((k) => k.keyid).join(', ')})`,
  );
}

function unsigned(reason: string): VmhubError {
  return new VmhubError('UnsignedImage', reason);
}

function untrusted(reason: string): VmhubError {
  return new VmhubError('UntrustedSignature', reason);
}
