import type fs from 'node:fs';
import { writevFully } from '../datastore/files';
import type { BlockStore } from '../storage/block-store';
import { SourceProblem } from './download-request';

/**
 * A chunk's bytes are gathered into writes of about this much as they arrive: few system calls, little
 * held per lane, and no larger: for a larger write the kernel takes large page-cache folios, and on a
 * virtual machine that hands free memory back to its host those cost several times more to fill (a 1 GiB
 * download spent seconds of system time in 8 MiB writes, under half a second in 1 MiB ones).
 */
const WRITE_PIECE = 1024 * 1024;

/**
 * Streams the `count` bytes at `offset` of a blob into the file at the same offset as they arrive,
 * gathered into writes of about WRITE_PIECE: the lane never holds the chunk whole. A read that fails or
 * ends early is the source's problem; a failed write is the agent's own and is thrown as it is.
 */
export async function streamRange(
  store: BlockStore,
  blob: string,
  handle: fs.promises.FileHandle,
  offset: number,
  count: number,
  signal: AbortSignal,
): Promise<void> {
  const unreachable = (err: unknown) => {
    if (signal.aborted) return err;
    return new SourceProblem('unreachable', `unreachable while reading: ${(err as Error).message.split('\n')[0]}`);
  };
  let body: AsyncIterator<Buffer>;
  try {
    // One request per chunk, resumed from where it broke off.
    body = (await store.readStream(blob, offset, count, { abortSignal: signal }))[Symbol.asyncIterator]();
  } catch (err) {
    throw unreachable(err);
  }
  let written = 0;
  let ended = false;
  try {
    const gathered: Buffer[] = [];
    let size = 0;
    for (;;) {
      let next: IteratorResult<Buffer>;
      try {
        next = await body.next();
      } catch (err) {
        throw unreachable(err);
      }
      ended = next.done === true;
      if (!ended) {
        gathered.push(next.value);
        size += next.value.length;
        if (written + size > count) throw new SourceProblem('unreachable', `range at ${offset} sent more than ${count} bytes`);
      }
      if (size > 0 && (ended || size >= WRITE_PIECE)) {
        await writevFully(handle, gathered.splice(0), offset + written);
        written += size;
        size = 0;
      }
      if (ended) break;
    }
  } finally {
    // Leaving early (a failed write, a cancel) closes the response rather than reading it to its end.
    if (!ended) await body.return?.().catch(() => undefined);
  }
  if (written !== count) throw new SourceProblem('unreachable', `range at ${offset} ended after ${written} of ${count} bytes`);
}
