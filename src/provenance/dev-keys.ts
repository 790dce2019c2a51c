import { generateKeyPairSync } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { devKeyPaths } from '../config';

/**
 * The embedded services' signing key pair (Ed25519), made once under the data directory: the control
 * worker started beside them signs with it, and the agents trust its public key, unless
 * VMHUB_SIGNING_KEY_FILE and VMHUB_TRUSTED_KEYS say otherwise. For development only: anyone who can
 * read the data directory can sign.
 */
export function ensureDevKeys(dataDir: string): { signingKey: string; trusted: string } {
  const paths = devKeyPaths(dataDir);
  if (fs.existsSync(paths.signingKey)) return paths;
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  fs.mkdirSync(paths.trusted, { recursive: true });
  fs.writeFileSync(path.join(paths.trusted, 'dev.pem'), publicKey.export({ type: 'spki', format: 'pem' }));
  // Written under a temporary name and renamed: a key file is whole or absent.
  const next = `${paths.signingKey}.next`;
  fs.writeFileSync(next, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  fs.renameSync(next, paths.signingKey);
  return paths;
}
