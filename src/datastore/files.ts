import fs from 'node:fs';
import path from 'node:path';
import { VmhubError } from '../shared/errors';

/**
 * File I/O in the agent's datastore: nothing is opened through a link at its name, and writes go on
 * until every byte is written.
 */
export const { O_CREAT, O_DIRECTORY, O_EXCL, O_NOFOLLOW, O_RDONLY, O_RDWR, O_TRUNC, O_WRONLY } = fs.constants;

/** Writes all of buf at position: a write may take fewer bytes than asked, so it goes on from where that one stopped. */
export async function writeFully(
  handle: Pick<fs.promises.FileHandle, 'write'>,
  buf: Uint8Array,
  position: number,
): Promise<void> {
  for (let done = 0; done < buf.length;) {
    const { bytesWritten } = await handle.write(buf, done, buf.length - done, position + done);
    if (bytesWritten <= 0) throw new Error(`write at offset ${position + done} wrote nothing`);
    done += bytesWritten;
  }
}

/** Writes all of buffers, in order, from position: one gathering write, then piece by piece for what it left. */
export async function writevFully(
  handle: Pick<fs.promises.FileHandle, 'write' | 'writev'>,
  buffers: Buffer[],
  position: number,
): Promise<void> {
  let skip = (await handle.writev(buffers, position)).bytesWritten;
  let at = position;
  for (const buf of buffers) {
    if (skip < buf.length) await writeFully(handle, buf.subarray(skip), at + skip);
    skip = Math.max(0, skip - buf.length);
    at += buf.length;
  }
}

/** Opens a file in the datastore without following a link at its name. */
export async function openNoFollow(file: string, flags: number): Promise<fs.promises.FileHandle> {
  try {
    return await fs.promises.open(file, flags | O_NOFOLLOW, 0o644);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ELOOP') {
      throw new VmhubError('InvalidInput', `${file} is a link; the agent does not follow links in its datastore`);
    }
    throw err;
  }
}

/** A small file's text, or undefined when there is none. */
export async function readNoFollow(file: string): Promise<string | undefined> {
  const handle = await openNoFollow(file, O_RDONLY).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (!handle) return undefined;
  try {
    return await handle.readFile('utf8');
  } finally {
    await handle.close();
  }
}

export async function writeNoFollow(file: string, text: string, flags: number, durable: boolean): Promise<void> {
  const handle = await openNoFollow(file, O_WRONLY | O_CREAT | flags);
  try {
    await writeFully(handle, Buffer.from(text), 0);
    if (durable) await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Makes the directory's entries (a rename, a new file) durable. */
export async function syncDir(dir: string): Promise<void> {
  const handle = await fs.promises.open(dir, O_RDONLY | O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Removes the version folder and then the image folder, each only if it is empty. */
export async function removeEmptyDirs(versionDir: string): Promise<void> {
  for (const dir of [versionDir, path.dirname(versionDir)]) {
    if (
      !(await fs.promises.rmdir(dir).then(
        () => true,
        () => false,
      ))
    )
      break;
  }
}
