import type { KeyObject } from 'node:crypto';
import type { RunRef } from '../catalog/image-records';
import type { ImageMetadata } from '../images/inspect';
import { keyIdOf, loadSigningKey } from '../provenance/keys';
import type { Envelope } from '../provenance/dsse';
import { signStatement, type SignedBlocks, type SignedMember } from '../provenance/statement';
import { writeStoredEnvelope, envelopeBlobOf } from '../provenance/stored';
import { VmhubError } from '../shared/errors';
import type { ImageFormat } from '../shared/image-format';
import type { BlobLocation } from '../shared/publish-input';
import type { BlockStores } from '../storage/block-store';

/** What a publish signs once its blob is committed: the digests come from the run's own inspection. */
export interface SignInput {
  image: string;
  version: string;
  format: ImageFormat;
  sha256: string;
  sizeBytes: number;
  /** The committed blocks' size and the SHA-256 of their IDs; absent from runs recorded before blocks were signed. */
  blocks?: SignedBlocks;
  metadata: ImageMetadata;
  source: string;
  location: BlobLocation;
  owner?: RunRef;
}

/** What markAvailable records of the signature, in the same write that makes the version available. */
export interface SignOutput {
  keyid: string;
  signedAt: string;
  envelopeBlob: string;
  /** The envelope itself, when small (NOTED_ENVELOPE_BYTES). */
  envelope?: Envelope;
}

/** An envelope up to this size is kept on the catalog record too, for `vmhub show`. */
const NOTED_ENVELOPE_BYTES = 16 * 1024;

/** The publisher's key; a worker without one publishes nothing (checked at the claim, before any byte moves). */
export function requireSigningKey(file: string | undefined): KeyObject {
  if (!file) {
    throw new VmhubError(
      'NoSigningKey',
      'this worker has no signing key: set VMHUB_SIGNING_KEY_FILE to a PEM private key (Ed25519 or ECDSA P-256); agents refuse unsigned versions',
    );
  }
  return loadSigningKey(file);
}

/** Every member's SHA-256 and size (an OVA's members, an OVF package's files); an ISO has none. */
export function signedMembers(metadata: ImageMetadata): SignedMember[] {
  if (metadata.kind !== 'ova') return [];
  return metadata.archive.files.map((f) => {
    if (!f.sha256) throw new VmhubError('InvalidImage', `member ${JSON.stringify(f.name)} was not hashed with SHA-256`);
    return { name: f.name, sha256: f.sha256, size: f.size };
  });
}

/** The source as it may be shown to anyone: no user, password, query string or fragment. */
export function publicSource(source: string): string {
  let url: URL;
  try {
    url = new URL(source);
  } catch {
    return source; // a path
  }
  if (url.protocol === 'file:') return source;
  url.username = '';
  url.password = '';
  url.search = '';
  url.hash = '';
  return url.toString();
}

/**
 * Signs the statement of what the run published, stores the envelope beside the blob in the primary
 * location (replication copies it on) and notes who signed it on the version, while the run owns it.
 */
export async function signPublished(
  storage: BlockStores,
  key: KeyObject,
  input: SignInput,
  run: RunRef,
  now: Date,
): Promise<SignOutput> {
  const envelope = signStatement(
    {
      image: input.image,
      version: input.version,
      format: input.format,
      sha256: input.sha256,
      sizeBytes: input.sizeBytes,
      members: signedMembers(input.metadata),
      ...(input.blocks ? { blocks: input.blocks } : {}),
      source: publicSource(input.source),
      run: { workflowId: run.workflowId, runId: run.runId },
      publishedAt: now.toISOString(),
    },
    key,
  );
  await writeStoredEnvelope(storage.store(input.location.storage), input.location.blob, envelope);
  // No catalog write here: markAvailable records the note with the version's state, in one write that only
  // the claim's owner can make.
  const small = Buffer.byteLength(JSON.stringify(envelope)) <= NOTED_ENVELOPE_BYTES;
  return {
    keyid: keyIdOf(key),
    signedAt: now.toISOString(),
    envelopeBlob: envelopeBlobOf(input.location.blob),
    ...(small ? { envelope } : {}),
  };
}
