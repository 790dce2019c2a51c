import { createHash } from 'node:crypto';
import { Transform, Writable, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
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
  const problems: string[] = [];
  let bytesRead = 0;
  await readItemFiles(
    library,
    itemId,
    files,
    async (file, bytes) => {
      if (!bytes) {
        problems.push(`${file.name} cannot be downloaded from the item`);
        return;
      }
      const done = bytesRead;
      const checked = new CheckedBytes(file, (n) => options.onBytes?.(done + n));
      try {
        await pipeline(bytes, checked, new Writable({ write: (_chunk, _encoding, next) => next() }));
      } catch (err) {
        if (!(err instanceof FileMismatch)) throw err;
        problems.push(`${file.name} reads back ${err.message}`);
      }
      bytesRead += checked.bytes;
    },
    { signal: options.signal },
  );
  return { problems, bytesRead };
}

/** A file's bytes are not the expected ones: their size or SHA-256 differs. */
export class FileMismatch extends Error {
  override name = 'FileMismatch';
}

/**
 * Passes a file's bytes through, hashing them, and holds the last chunk back until their size and SHA-256
 * are known: bytes that differ end the stream in a FileMismatch instead, so an upload fed from it never
 * delivers a whole file of other bytes.
 */
export class CheckedBytes extends Transform {
  /** The bytes seen so far. */
  bytes = 0;
  private readonly hash = createHash('sha256');
  private held?: Buffer;

  constructor(
    private readonly expected: ExpectedFile,
    private readonly onBytes?: (bytes: number) => void,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.bytes += chunk.length;
    this.onBytes?.(this.bytes);
    this.hash.update(chunk);
    if (this.bytes > this.expected.size) return done(new FileMismatch(`as more than ${this.expected.size} bytes`));
    const out = this.held;
    this.held = chunk;
    done(null, out);
  }

  override _flush(done: TransformCallback): void {
    const sha = this.hash.digest('hex');
    if (this.bytes !== this.expected.size) return done(new FileMismatch(`as ${this.bytes} bytes, not ${this.expected.size}`));
    if (sha !== this.expected.sha256) return done(new FileMismatch(`with SHA-256 ${sha}, not ${this.expected.sha256}`));
    if (this.held) this.push(this.held);
    done();
  }
}

/**
 * Reads files of an item through one download session: `use` gets each file's bytes as a stream, or
 * undefined where the item does not serve that file. The session ends whatever happens.
 */
export async function readItemFiles<T extends ExpectedFile>(
  library: ContentLibrary,
  itemId: string,
  files: readonly T[],
  use: (file: T, bytes: Readable | undefined) => Promise<void>,
  call: { signal?: AbortSignal } = {},
): Promise<void> {
  const { session, endpoints } = await library.downloadEndpoints(itemId, call);
  try {
    for (const file of files) {
      const endpoint = endpoints.get(file.name);
      const bytes = endpoint ? await library.rest.download(endpoint, file.name, call) : undefined;
      try {
        await use(file, bytes);
      } finally {
        bytes?.destroy();
      }
    }
  } finally {
    await library.endDownload(session).catch(() => undefined);
  }
}
