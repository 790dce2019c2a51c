import fs from 'node:fs';
import path from 'node:path';
import { O_RDONLY, O_TRUNC, openNoFollow, readNoFollow, writeNoFollow } from '../datastore/files';
import type { DeploymentPaths } from '../datastore/layout';
import { parseEnvelope, type Envelope } from '../provenance/dsse';
import type { TrustedKey } from '../provenance/keys';
import { checkAgainstProvenance, verifyProvenance, type Provenance } from '../provenance/statement';
import { readStoredEnvelope } from '../provenance/stored';
import { VmhubError } from '../shared/errors';
import type { ImageFormat } from '../shared/image-format';
import type { ImageVersion } from '../shared/image-version';
import type { BlockStore } from '../storage/block-store';
import { hashedMembers, hashFile } from './verify';

/** A version's verified provenance, with the envelope it came in (kept beside the copy for the import). */
export interface Signed {
  provenance: Provenance;
  envelope: Envelope;
}

/**
 * The signed digests of exactly this version, from the envelope beside `blob` in the store the bytes come
 * from, verified with this agent's own trusted keys. The task's SHA-256 and size (the catalog's) are only
 * a hint: one that differs from the signed ones is refused before a byte is fetched.
 */
export async function signedAt(
  store: BlockStore,
  blob: string,
  version: ImageVersion,
  trusted: readonly TrustedKey[],
  signal?: AbortSignal,
): Promise<Signed> {
  const envelope = await readStoredEnvelope(store, blob, signal);
  return { provenance: signedFor(envelope, version, trusted), envelope };
}

function signedFor(envelope: Envelope, version: ImageVersion, trusted: readonly TrustedKey[]): Provenance {
  const provenance = verifyProvenance(envelope, trusted, version);
  if (provenance.sha256 !== version.sha256 || provenance.sizeBytes !== version.sizeBytes) {
    throw new VmhubError(
      'ProvenanceMismatch',
      `the task names SHA-256 ${version.sha256} (${version.sizeBytes} bytes) for ${version.image}@${version.version}; the signed statement says ${provenance.sha256} (${provenance.sizeBytes} bytes)`,
    );
  }
  return provenance;
}

export async function keepEnvelope(paths: DeploymentPaths, envelope: Envelope): Promise<void> {
  await writeNoFollow(paths.envelope, JSON.stringify(envelope), O_TRUNC, true);
}

/** The provenance kept beside a copy, verified anew with this agent's keys; none there is UnsignedImage. */
export async function signedLocally(
  paths: DeploymentPaths,
  version: ImageVersion,
  trusted: readonly TrustedKey[],
): Promise<Provenance> {
  const text = await readNoFollow(paths.envelope);
  if (text === undefined) {
    throw new VmhubError(
      'UnsignedImage',
      `${path.basename(paths.final)} has no signed provenance beside it (${path.basename(paths.envelope)}); deploy it again`,
    );
  }
  return signedFor(parseEnvelope(text), version, trusted);
}

/**
 * Reads the file on disk again, whole (and inspects it as a download does), and checks its bytes against
 * the signed digests. This, not the `.sha256` file beside it, is what makes a copy "present": anyone who
 * can change the file can change that file too, and a record of the file's identity (inode, times) as
 * well; only its bytes cannot lie. The cost is one read of the file at disk speed, paid instead of a download.
 */
export async function checkFileAgainst(file: string, format: ImageFormat, provenance: Provenance): Promise<void> {
  const handle = await openNoFollow(file, O_RDONLY);
  try {
    const { size } = await handle.stat();
    const { sha256, metadata, invalid } = await hashFile(handle, format, size);
    if (invalid) {
      throw new VmhubError('ProvenanceMismatch', `${path.basename(file)} is no longer a valid image: ${invalid.message}`);
    }
    checkAgainstProvenance(provenance, { sha256, sizeBytes: size, members: hashedMembers(metadata) });
  } finally {
    await handle.close();
  }
}

/** Whether the file at `final` holds exactly the signed bytes; a file that differs (or is gone) is not present. */
export async function presentAsSigned(final: string, format: ImageFormat, provenance: Provenance): Promise<boolean> {
  const stat = await fs.promises.lstat(final).catch(() => undefined);
  if (!stat?.isFile() || stat.size !== provenance.sizeBytes) return false;
  try {
    await checkFileAgainst(final, format, provenance);
    return true;
  } catch (err) {
    if (err instanceof VmhubError && err.type === 'ProvenanceMismatch') return false;
    throw err;
  }
}
