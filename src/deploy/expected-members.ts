import type { ImageVersionRecord } from '../catalog/image-records';
import type { SignedMember } from '../provenance/statement';
import { formatOf } from '../shared/image-format';
import { wholeImageName } from '../sddc/package-files';

/**
 * The one place the expected per-member digests of a version come from: the SHA-256 and size of every
 * file its library item must hold (an OVA's members, or the image itself for an ISO). Until the verified
 * provenance envelope reaches the deploy, they are what the catalog recorded when the publish inspected the
 * image; undefined when it lacks a member's SHA-256 (an OVA whose manifest used SHA-1), and the agent then
 * checks an item against the members of its own verified copy.
 */
export function expectedMembers(
  v: Pick<ImageVersionRecord, 'image' | 'version' | 'format' | 'sizeBytes' | 'metadata'> & { sha256: string },
): SignedMember[] | undefined {
  if (!formatOf(v.format).libraryItem.members) return [{ name: wholeImageName(v), sha256: v.sha256, size: v.sizeBytes }];
  const files = v.metadata?.kind === 'ova' ? v.metadata.archive.files : undefined;
  if (!files) return undefined;
  const members: SignedMember[] = [];
  for (const f of files) {
    if (f.digest?.algorithm !== 'sha256') return undefined;
    members.push({ name: f.name, sha256: f.digest.value, size: f.size });
  }
  return members;
}
