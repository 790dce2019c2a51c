import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { VmhubError } from '../shared/errors';
import { sibling } from '../images/ova';
import { TarReader } from '../images/tar-reader';
import { MAX_DESCRIPTOR_BYTES, quoted } from '../images/xml';
import { formatOf, type ImageFormat } from '../shared/image-format';
import { libraryItemName } from '../shared/target-kinds/content-library';
import { hashPool } from '../storage/hashing';

/**
 * The files a content library item is made of, as byte ranges of the verified local image: an OVA is
 * split on this side into its members (descriptor, manifest, certificate, disks), each with its own
 * SHA-256, as `govc library.import` does; an ISO is one file.
 */
export interface LibraryFile {
  name: string;
  offset: number;
  size: number;
  sha256: string;
}

const READ_CHUNK = 4 * 1024 * 1024;

/** The name of the one file of an item that is the image itself (an ISO): `<image>-<version>.<extension>`. */
export function wholeImageName(ref: { image: string; version: string; format: ImageFormat }): string {
  return `${libraryItemName(ref.image, ref.version)}.${formatOf(ref.format).blobExtension}`;
}

/** The one file of an item that is the image itself (an ISO), whose SHA-256 the download has already checked. */
export function wholeImageFile(name: string, sizeBytes: number, sha256: string): LibraryFile {
  return { name, offset: 0, size: sizeBytes, sha256 };
}

/**
 * Reads an OVA once and returns the members a library item may hold, in archive order with their offsets
 * and SHA-256: the descriptor, its manifest and certificate, and the files it references. Any other member
 * (a second descriptor, a stray file) never reaches the vCenter, which could otherwise read a descriptor
 * vmhub never catalogued; a publish refuses such an OVA, so only one published before that has them. The
 * archive was verified by the download; the walk still refuses what a library could not hold: a member
 * that is not a plain file or whose name has a slash.
 */
export async function ovaMembers(
  file: string,
  options: { signal?: AbortSignal; onBytes?: (bytesRead: number) => void } = {},
): Promise<LibraryFile[]> {
  const members: LibraryFile[] = [];
  let descriptor: { name: string; parts: Buffer[] } | undefined;
  let chunkStart = 0;
  let chunk: Buffer = Buffer.alloc(0);
  const reader = new TarReader((entry) => {
    if (entry.type !== 'file') throw new VmhubError('InvalidImage', `OVA member ${quoted(entry.name)} is a ${entry.type}`);
    if (entry.name.includes('/')) {
      throw new VmhubError(
        'InvalidImage',
        `OVA member ${quoted(entry.name)} is in a folder; a library item's files have plain names`,
      );
    }
    const hash = createHash('sha256');
    const member: LibraryFile = { name: entry.name, offset: -1, size: entry.size, sha256: '' };
    members.push(member);
    const kept: Buffer[] | undefined =
      !descriptor && entry.name.toLowerCase().endsWith('.ovf') && entry.size <= MAX_DESCRIPTOR_BYTES ? [] : undefined;
    if (kept) descriptor = { name: entry.name, parts: kept };
    return {
      update(bytes) {
        kept?.push(Buffer.from(bytes));
        // The reader hands out views of the chunk it was given, so where they start in the chunk is where they are in the file.
        if (member.offset < 0) member.offset = chunkStart + (bytes.byteOffset - chunk.byteOffset);
        hash.update(bytes);
      },
      end() {
        if (member.offset < 0) member.offset = chunkStart;
        member.sha256 = hash.digest('hex');
      },
    };
  });
  const stream = fs.createReadStream(file, { highWaterMark: READ_CHUNK, signal: options.signal });
  for await (const data of stream as AsyncIterable<Buffer>) {
    chunk = data;
    await reader.write(chunk);
    chunkStart += chunk.length;
    options.onBytes?.(chunkStart);
  }
  reader.finish();
  if (!descriptor) throw new VmhubError('InvalidImage', 'the OVA holds no .ovf descriptor');
  return onlyReferenced(members, descriptor.name, Buffer.concat(descriptor.parts));
}

/**
 * The members an item may hold: the descriptor, its `.mf` and `.cert`, and the files it references. The
 * descriptor is parsed on a hashing thread, never on the agent's event loop, and once per content there.
 */
async function onlyReferenced(members: LibraryFile[], descriptor: string, text: Buffer): Promise<LibraryFile[]> {
  const referenced = new Set((await hashPool().descriptor(text)).files.map((f) => f.href));
  return members.filter(
    (m) =>
      m.name === descriptor ||
      referenced.has(m.name) ||
      sibling(m.name, descriptor, '.mf') ||
      sibling(m.name, descriptor, '.cert'),
  );
}
