import fs from 'node:fs';
import { VmhubError } from '../shared/errors';
import { inodeOf, MissingSource, type ImageSource, type SourceRef } from './source';

type FileRef = Extract<SourceRef, { kind: 'file' }>;

/**
 * Never follows a symlink in the last component, and never waits for a writer: a FIFO or device
 * swapped in after the check opens at once and is then refused by its type.
 */
const OPEN_FLAGS = fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK;

/** A repository file, opened as the very file `resolveSource` checked against the roots. */
export class FileSource implements ImageSource {
  private constructor(
    readonly ref: FileRef,
    private readonly handle: fs.promises.FileHandle,
    readonly sizeBytes: number,
    readonly version: string,
  ) {}

  static async open(ref: FileRef): Promise<FileSource> {
    let handle: fs.promises.FileHandle;
    try {
      handle = await fs.promises.open(ref.path, OPEN_FLAGS);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw new MissingSource(`${ref.path} no longer exists`);
      if (code === 'ELOOP') throw new VmhubError('InvalidSource', `${ref.path} was replaced by a symbolic link`);
      if (code === 'EACCES' || code === 'EPERM') throw new VmhubError('InvalidSource', `${ref.path} may not be read`);
      throw err;
    }
    try {
      const stat = await handle.stat({ bigint: true });
      if (!stat.isFile()) throw new VmhubError('InvalidSource', `${ref.path} is no longer a regular file`);
      if (inodeOf(stat) !== ref.inode) {
        throw new VmhubError('InvalidSource', `${ref.path} was replaced by another file after it was checked`);
      }
      // The device number is left out of the version: hosts mounting the same share see different ones.
      return new FileSource(ref, handle, Number(stat.size), `file:${stat.ino}:${stat.size}:${stat.mtimeNs}`);
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  async read(start: number, end: number, _signal?: AbortSignal, into?: Buffer): Promise<Buffer> {
    const buf = into ?? Buffer.allocUnsafe(end - start);
    let done = 0;
    while (done < buf.length) {
      const { bytesRead } = await this.handle.read(buf, done, buf.length - done, start + done);
      if (bytesRead === 0)
        throw new VmhubError('SourceChanged', `source ended at ${start + done} bytes, expected ${this.sizeBytes}`);
      done += bytesRead;
    }
    return buf;
  }

  close(): Promise<void> {
    return this.handle.close();
  }
}
