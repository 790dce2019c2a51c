import type { Envelope } from '../provenance/dsse';
import type { TrustedKey } from '../provenance/keys';
import { verifyProvenance, type Provenance, type SignedMember } from '../provenance/statement';
import { formatOf } from '../shared/image-format';
import type { ImageVersion } from '../shared/image-version';
import { wholeImageName } from '../sddc/package-files';

/**
 * The SHA-256 and size of every file a version's library item must hold, as its signed statement says: an
 * OVA's members, or the image itself for a format whose item is the image (an ISO).
 */
export function signedItemMembers(ref: ImageVersion, provenance: Provenance): SignedMember[] {
  if (!formatOf(ref.format).libraryItem.members) {
    return [{ name: wholeImageName(ref), sha256: provenance.sha256, size: provenance.sizeBytes }];
  }
  return [...provenance.members];
}

/** What a copy of a version must be, from the signed statement alone. */
export interface SignedDigests {
  sha256: string;
  sizeBytes: number;
  members: SignedMember[];
}

/**
 * The digests a copy must have, from an envelope a task carries (the catalog's copy of it): verified here
 * with this agent's keys for exactly this image@version, so nobody who can write the catalog or the task
 * can change them. Undefined when the task carries none (the catalog keeps only small envelopes).
 */
export function signedDigests(
  ref: ImageVersion,
  envelope: Envelope | undefined,
  trusted: readonly TrustedKey[],
): SignedDigests | undefined {
  if (!envelope) return undefined;
  const provenance = verifyProvenance(envelope, trusted, ref);
  return { sha256: provenance.sha256, sizeBytes: provenance.sizeBytes, members: signedItemMembers(ref, provenance) };
}
