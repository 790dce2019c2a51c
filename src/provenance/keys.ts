import { createHash, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { VmhubError } from '../shared/errors';

/** A public key a verifier trusts, under the ID that envelopes name it by. */
export interface TrustedKey {
  keyid: string;
  publicKey: KeyObject;
}

/** The key kinds DSSE verifiers commonly accept; anything else is refused when the key is loaded. */
function checkKind(key: KeyObject, file: string): void {
  const kind = key.asymmetricKeyType;
  const curve = key.asymmetricKeyDetails?.namedCurve;
  if (kind === 'ed25519' || (kind === 'ec' && curve === 'prime256v1')) return;
  throw new VmhubError(
    'InvalidInput',
    `${file}: a signing key is Ed25519 or ECDSA P-256, not ${kind}${curve ? ` ${curve}` : ''}`,
  );
}

/** A key's ID: the SHA-256 of its public key (SubjectPublicKeyInfo, DER), so every side derives the same ID. */
export function keyIdOf(key: KeyObject): string {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  return createHash('sha256')
    .update(publicKey.export({ type: 'spki', format: 'der' }))
    .digest('hex');
}

/** The publisher's private key (PEM, PKCS#8), from VMHUB_SIGNING_KEY_FILE. */
export function loadSigningKey(file: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey(fs.readFileSync(file));
  } catch (err) {
    throw new VmhubError('InvalidInput', `${file} holds no readable private key (PEM, PKCS#8): ${(err as Error).message}`);
  }
  checkKind(key, file);
  return key;
}

/**
 * The public keys a verifier trusts, from VMHUB_TRUSTED_KEYS: files or directories (every `*.pem` in one),
 * comma-separated. Several keys let a signing key be rotated: trust the new one, sign with it, then drop the old.
 */
export function loadTrustedKeys(spec: string | undefined): TrustedKey[] {
  const files = (spec ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .flatMap((entry) => {
      const stat = fs.statSync(entry, { throwIfNoEntry: false });
      if (!stat) throw new VmhubError('InvalidInput', `VMHUB_TRUSTED_KEYS names ${entry}, which does not exist`);
      if (!stat.isDirectory()) return [entry];
      return fs
        .readdirSync(entry)
        .filter((name) => name.endsWith('.pem'))
        .sort()
        .map((name) => path.join(entry, name));
    });
  return files.map((file) => {
    let publicKey: KeyObject;
    try {
      publicKey = createPublicKey(fs.readFileSync(file));
    } catch (err) {
      throw new VmhubError('InvalidInput', `${file} holds no readable public key (PEM): ${(err as Error).message}`);
    }
    checkKind(publicKey, file);
    return { keyid: keyIdOf(publicKey), publicKey };
  });
}
