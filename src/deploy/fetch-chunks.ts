import type fs from 'node:fs';
import { runPool } from '../shared/concurrency';
import { writeFully } from '../datastore/files';
import type { DeploymentPaths } from '../datastore/layout';
import type { ChunkFill, ChunkSource, FetchRange } from './local-copy';
import { bytesDone, Checkpoints, CHUNK, type PartialState } from './partial-state';

export interface ChunkFetch {
  sizeBytes: number;
  /** The partial file, already of its full size. */
  handle: fs.promises.FileHandle;
  paths: DeploymentPaths;
  /** Where the download stands; its `doneBelow` moves on as chunks land. */
  state: PartialState;
  chunkSource: ChunkSource;
  /** Streams a range of the blob into the file at the same offset. */
  fetch: FetchRange;
  concurrency: number;
  /** Told each time the written start of the file grows, with its length in bytes. */
  onWritten: (bytesDone: number) => void;
}

/**
 * Fills the chunks past the checkpoint in parallel lanes, each copied where an earlier version on disk
 * holds its blocks and fetched otherwise, and checkpoints progress as they land; ends with a checkpoint of
 * the whole file.
 */
export async function fetchChunks(f: ChunkFetch): Promise<ChunkFill> {
  const { state, sizeBytes, handle } = f;
  const chunks = Math.ceil(sizeBytes / CHUNK);
  const done = new Set<number>();
  const pending: number[] = [];
  for (let i = state.doneBelow; i < chunks; i++) pending.push(i);
  const checkpoints = new Checkpoints(handle, f.paths, state);
  const total: ChunkFill = { fetched: 0, reused: 0 };
  await runPool(pending, f.concurrency, async (i) => {
    const offset = i * CHUNK;
    const count = Math.min(CHUNK, sizeBytes - offset);
    const fill = await f.chunkSource.fill(offset, offset + count, f.fetch, (bytes, at) => writeFully(handle, bytes, at));
    total.fetched += fill.fetched;
    total.reused += fill.reused;
    done.add(i);
    while (done.has(state.doneBelow)) done.delete(state.doneBelow++);
    f.onWritten(bytesDone(state, sizeBytes));
    // The next lane does not wait for the disk: a failed checkpoint surfaces at the last one.
    if (checkpoints.due) checkpoints.write().catch(() => undefined);
  });
  await checkpoints.write();
  return total;
}
