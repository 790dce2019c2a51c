import type { ImageVersionRecord } from '../catalog/image-records';
import type { Provenance, SignedMember } from '../provenance/statement';
import { formatOf } from '../shared/image-format';
import type { ImageVersion } from '../shared/image-version';
import { wholeImageName } from '../sddc/package-files';

/**
 * The SHA-256 and size of every file a version's library item must hold: an OVA's members, or the image
 * itself for a format whose item is the image (an ISO).
 */
function itemMembers(ref: ImageVersion, members: readonly SignedMember[] | undefined): SignedMember[] | undefined {
  if (!formatOf(ref.format).libraryItem.members) return [{ name: wholeImageName(ref), sha256: ref.sha256, size: ref.sizeBytes }];
  return members && [...members];
}

/** What the signed statement says the item must hold: what an agent holding the verified envelope checks against. */
export function signedItemMembers(ref: ImageVersion, provenance: Provenance): SignedMember[] {
  return itemMembers({ ...ref, sha256: provenance.sha256, sizeBytes: provenance.sizeBytes }, provenance.members)!;
}

/**
 * What the catalog recorded when the publish inspected the image: the expected members for a check made
 * before the agent holds the version's envelope (a lookup before a download, VerifySddcs); undefined when a
 * member's SHA-256 is not recorded, and the agent then checks an item against its own verified copy.
 */
export function expectedMembers(
  v: Pick<ImageVersionRecord, 'image' | 'version' | 'format' | 'sizeBytes' | 'metadata'> & { sha256: string },
): SignedMember[] | undefined {
  const files = v.metadata?.kind === 'ova' ? v.metadata.archive.files : undefined;
  const members: SignedMember[] = [];
  for (const f of files ?? []) {
    const sha256 = f.sha256 ?? (f.digest?.algorithm === 'sha256' ? f.digest.value : undefined);
    if (!sha256) return itemMembers(v, undefined);
    members.push({ name: f.name, sha256, size: f.size });
  }
  return itemMembers(v, files && members);
}
