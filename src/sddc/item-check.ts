import { createHash } from 'node:crypto';
import { compareItemFiles, type ContentLibrary, type ExpectedFile } from './content-library';

/**
 * Whether a library item holds exactly the expected files, by their bytes. The item file list
 * (`/rest/com/vmware/content/library/item/file`) gives each file's name and size, and a vCenter its
 * `checksum_info`: a reported SHA-256 is compared with the expected one. A file whose SHA-256 is not
 * reported (vcsim lists only name and size; a vCenter may report another algorithm) is read back through a
 * download session and hashed here, up to `readLimitBytes`; past it the item stays unproven. A label (the
 * item's description) never makes an item present.
 */
export interface ItemVerdict {
  /** Every expected file is there with its size and SHA-256, and no other file is. */
  present: boolean;
  /** What differs: missing, resized or replaced files, and files the item should not hold. */
  problems: string[];
  /** Files beyond the expected ones; a `.ovf` among them is a second descriptor. */
  extra: string[];
  /** Expected files left unread because the read-back limit was reached: not proven either way. */
  unread: string[];
  /** Bytes read back and hashed. */
  bytesRead: number;
}

export interface VerifyItemOptions {
  signal?: AbortSignal;
  /** At most this many bytes are read back; undefined reads whatever the check needs. */
  readLimitBytes?: number;
  onBytes?: (bytesRead: number) => void;
}

export async function verifyItem(
  library: ContentLibrary,
  itemId: string,
  expected: readonly ExpectedFile[],
  options: VerifyItemOptions = {},
): Promise<ItemVerdict> {
  const call = { signal: options.signal };
  const cmp = compareItemFiles(expected, await library.itemFiles(itemId, call));
  const problems = [...cmp.problems, ...cmp.extra.map(extraProblem)];
  let unread = cmp.unreported;
  let bytesRead = 0;
  const toRead = unread.reduce((n, f) => n + f.size, 0);
  // A file already known wrong settles the verdict: nothing more is read.
  if (problems.length === 0 && unread.length > 0 && toRead <= (options.readLimitBytes ?? Infinity)) {
    const read = await readBack(library, itemId, unread, options);
    problems.push(...read.problems);
    bytesRead = read.bytesRead;
    unread = [];
  }
  return {
    present: problems.length === 0 && unread.length === 0,
    problems,
    extra: cmp.extra,
    unread: unread.map((f) => f.name),
    bytesRead,
  };
}

/**
 * Checks an item just completed by an import against the files sent: a missing, resized or replaced one
 * fails the attempt; a file beyond them (a second `.ovf` the vCenter could read) gets the item removed
 * before the attempt fails, so the next one makes it again with only the files sent. The item is this
 * version's and still marked importing: nothing but this import's bytes is lost.
 */
export async function checkImportedItem(
  library: Pick<ContentLibrary, 'itemFiles' | 'deleteItem'>,
  item: { id: string; name: string },
  sent: readonly ExpectedFile[],
  call: { signal?: AbortSignal } = {},
): Promise<void> {
  const { problems, extra } = compareItemFiles(sent, await library.itemFiles(item.id, call));
  if (extra.length > 0) {
    await library.deleteItem(item.id, call);
    throw new Error(`item ${item.name} was removed to be made again: ${extra.map(extraProblem).join('; ')}`);
  }
  if (problems.length > 0) throw new Error(`item ${item.name} is not whole after its update: ${problems.join('; ')}`);
}

function extraProblem(name: string): string {
  return name.toLowerCase().endsWith('.ovf') ? `${name} is an extra descriptor` : `${name} is an extra file`;
}

/** Hashes the files as a download session serves them, and says which differ from the expected SHA-256 and size. */
async function readBack(
  library: ContentLibrary,
  itemId: string,
  files: readonly ExpectedFile[],
  options: VerifyItemOptions,
): Promise<{ problems: string[]; bytesRead: number }> {
  const call = { signal: options.signal };
  const { session, endpoints } = await library.downloadEndpoints(itemId, call);
  const problems: string[] = [];
  let bytesRead = 0;
  try {
    for (const file of files) {
      const endpoint = endpoints.get(file.name);
      if (!endpoint) {
        problems.push(`${file.name} cannot be downloaded from the item`);
        continue;
      }
      const hash = createHash('sha256');
      let size = 0;
      for await (const chunk of await library.rest.download(endpoint, file.name, call)) {
        hash.update(chunk as Buffer);
        size += (chunk as Buffer).length;
        options.onBytes?.(bytesRead + size);
      }
      bytesRead += size;
      const sha = hash.digest('hex');
      if (size !== file.size) problems.push(`${file.name} reads back as ${size} bytes, not ${file.size}`);
      else if (sha !== file.sha256) problems.push(`${file.name} reads back with SHA-256 ${sha}, not ${file.sha256}`);
    }
  } finally {
    await library.endDownload(session).catch(() => undefined);
  }
  return { problems, bytesRead };
}
