import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { VmhubError } from '../shared/errors';
import { TarReader } from '../images/tar-reader';
import { quoted } from '../images/xml';
import { formatOf, type ImageFormat } from '../shared/image-format';
import { libraryItemName } from '../shared/target-kinds/content-library';

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
 * Reads an OVA once and returns its members in archive order with their offsets and SHA-256. The
 * archive was verified by the download; the walk still refuses what a library could not hold: a member
 * that is not a plain file or whose name has a slash.
 */
export async function ovaMembers(
  file: string,
  options: { signal?: AbortSignal; onBytes?: (bytesRead: number) => void } = {},
): Promise<LibraryFile[]> {
  const members: LibraryFile[] = [];
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
    return {
      update(bytes) {
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
  return members;
}
