import fs from 'node:fs';
import { O_TRUNC, readNoFollow, writeNoFollow } from '../datastore/files';
import { checkFreeSpace, discardPartial, type DeploymentPaths } from '../datastore/layout';

/** Progress of a download kept beside the partial file, so a new agent resumes from what is on disk. */
export interface PartialState {
  location: string;
  etag: string;
  sizeBytes: number;
  chunkSize: number;
  doneBelow: number;
  /**
   * The earlier version the partial file began as a copy of, once a checkpoint holds it: a checkpoint
   * follows a sync, so the copy is then on disk, and its blocks the new version keeps in place need not
   * be written again on resume. Absent when the file was filled chunk by chunk.
   */
  cloned?: { version: string; sha256: string };
}

export const CHUNK = 8 * 1024 * 1024;
/** Progress on disk is made durable after this many bytes, and after a second at the latest. */
const CHECKPOINT_BYTES = 64 * 1024 * 1024;

/** The bytes at the start of the file that are all written. */
export function bytesDone(state: PartialState, sizeBytes: number): number {
  return Math.min(state.doneBelow * CHUNK, sizeBytes);
}

/**
 * Where a download from this source starts: from the checkpoint an earlier attempt left, when it was of
 * the same source, blob and chunk size and its partial file is there; from scratch otherwise. Refuses a
 * download the disk has no room left for.
 */
export async function resumePartial(
  paths: DeploymentPaths,
  location: string,
  etag: string,
  sizeBytes: number,
): Promise<{ state: PartialState; resumed: boolean }> {
  const previous = parseState(await readNoFollow(paths.state));
  const partial = await fs.promises.lstat(paths.partial).catch(() => undefined);
  const resumable =
    previous?.location === location && previous.etag === etag && previous.chunkSize === CHUNK && partial?.isFile() === true;
  if (!resumable) await discardPartial(paths);
  const state: PartialState = resumable ? previous : { location, etag, sizeBytes, chunkSize: CHUNK, doneBelow: 0 };
  const allocated = resumable ? partial.blocks * 512 : 0;
  checkFreeSpace(await fs.promises.statfs(paths.dir), Math.max(0, sizeBytes - allocated), paths.dir);
  return { state, resumed: resumable };
}

function parseState(text: string | undefined): PartialState | undefined {
  try {
    return text === undefined ? undefined : (JSON.parse(text) as PartialState);
  } catch {
    return undefined;
  }
}

/** Records progress only once the bytes below it are on disk; one checkpoint at a time, in order. */
export class Checkpoints {
  private last: { at: number; doneBelow: number };
  private chain = Promise.resolve();

  constructor(
    private readonly handle: fs.promises.FileHandle,
    private readonly paths: DeploymentPaths,
    private readonly state: PartialState,
  ) {
    this.last = { at: Date.now(), doneBelow: state.doneBelow };
  }

  get due(): boolean {
    return Date.now() - this.last.at > 1_000 || (this.state.doneBelow - this.last.doneBelow) * CHUNK >= CHECKPOINT_BYTES;
  }

  write(): Promise<void> {
    const doneBelow = this.state.doneBelow;
    this.last = { at: Date.now(), doneBelow };
    return (this.chain = this.chain.then(async () => {
      await this.handle.datasync();
      await writeNoFollow(this.paths.stateNext, JSON.stringify({ ...this.state, doneBelow }), O_TRUNC, false);
      await fs.promises.rename(this.paths.stateNext, this.paths.state);
    }));
  }
}
