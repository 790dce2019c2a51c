import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { blockIndexPath } from '../../src/deploy/block-index';
import { ChunkSource } from '../../src/deploy/local-copy';
import { CHUNK, type PartialState } from '../../src/deploy/partial-state';
import { repairKeptBlocks } from '../../src/deploy/repair-copy';
import { hashFile } from '../../src/deploy/verify';
import { blockDigestOf, blockId } from '../../src/storage/block-ids';
import type { BlockStore } from '../../src/storage/block-store';
import { filler } from '../images/build';

/**
 * A delta deploy whose file begins as the file system's copy of the earlier version: the blocks kept in
 * place are neither read by the process nor written again, only changed and moved blocks are; a resumed
 * download trusts such a copy only when its checkpoint names the same base; and an earlier version
 * damaged on disk is caught by the whole file's SHA-256, its damaged block found and fetched again.
 */
const BLOCK = 4096;
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

const digestsOf = (image: Buffer) =>
  Array.from({ length: Math.ceil(image.length / BLOCK) }, (_, i) =>
    blockDigestOf(sha(image.subarray(i * BLOCK, (i + 1) * BLOCK))),
  );
const storeOf = (image: Buffer) =>
  ({
    committedBlocks: () =>
      Promise.resolve(digestsOf(image).map((d, i) => ({ name: blockId(i, d), size: Math.min(BLOCK, image.length - i * BLOCK) }))),
  }) as unknown as BlockStore;

const v1 = filler(16 * BLOCK + 100, 3);
/** 1.0.1: block 5 changed, block 9 holds 1.0.0's block 2 (moved), the rest in place. */
const v2 = Buffer.from(v1);
v2.fill(1, 5 * BLOCK + 7, 5 * BLOCK + 70);
v1.copy(v2, 9 * BLOCK, 2 * BLOCK, 3 * BLOCK);

let root: string;
let baseFile: string;
let partial: string;

beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'vmhub-delta-clone-'));
  fs.mkdirSync(path.join(root, 'img', '1.0.0'), { recursive: true });
  fs.mkdirSync(path.join(root, 'img', '1.0.1'), { recursive: true });
  baseFile = path.join(root, 'img', '1.0.0', 'img-1.0.0.iso');
  partial = path.join(root, 'img', '1.0.1', 'img-1.0.1.iso.partial');
  fs.writeFileSync(baseFile, v1);
  fs.writeFileSync(`${baseFile}.sha256`, `${sha(v1)}  img-1.0.0.iso\n`);
  const index = { sha256: sha(v1), sizeBytes: v1.length, blockSize: BLOCK, digests: digestsOf(v1) };
  fs.writeFileSync(blockIndexPath(baseFile), JSON.stringify(index));
});
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

const open = () =>
  ChunkSource.open(
    storeOf(v2),
    'img/1.0.1/img-1.0.1.iso',
    { image: 'img', version: '1.0.1', sha256: sha(v2), sizeBytes: v2.length },
    root,
    { reuse: true, abortSignal: new AbortController().signal },
  );
const quiet = { warn: () => undefined };
const freshState = (): PartialState => ({ location: 'east', etag: 'e', sizeBytes: v2.length, chunkSize: CHUNK, doneBelow: 0 });

/** Fills the partial file through the source as a download does, fetching from 1.0.1's bytes. */
async function fillFile(source: ChunkSource, handle: fs.promises.FileHandle) {
  const fetched: Array<[number, number]> = [];
  const written: Array<[number, number]> = [];
  const fetch = async (start: number, length: number) => {
    fetched.push([start, start + length]);
    await handle.write(v2, start, length, start);
  };
  const fill = await source.fill(0, v2.length, fetch, async (b, at) => {
    written.push([at, at + b.length]);
    await handle.write(b, 0, b.length, at);
  });
  return { fetch, fetched, written, fill };
}

it('begins the file as a copy of the earlier version and never reads or writes the blocks it keeps in place', async () => {
  const source = await open();
  const state = freshState();
  await source.startFrom(partial, state, quiet);
  expect(source.isCloned).toBe(true);
  expect(state.cloned).toEqual({ version: '1.0.0', sha256: sha(v1) });
  expect(fs.readFileSync(partial).equals(v1)).toBe(true);

  const handle = await fs.promises.open(partial, 'r+');
  try {
    const { fetched, written, fill } = await fillFile(source, handle);
    expect(fetched).toEqual([[5 * BLOCK, 6 * BLOCK]]);
    // Only the moved block passes through the process: read from the base once, written once.
    expect(written).toEqual([[9 * BLOCK, 10 * BLOCK]]);
    expect(source.readFromBase).toBe(BLOCK);
    expect(fill).toEqual({ fetched: BLOCK, reused: v2.length - BLOCK });
    expect(source.keptBlocks().map((b) => b.start / BLOCK)).toEqual([0, 1, 2, 3, 4, 6, 7, 8, 10, 11, 12, 13, 14, 15, 16]);
    expect((await hashFile(handle, 'iso', v2.length)).sha256).toBe(sha(v2));
  } finally {
    await handle.close();
    await source.close();
  }
});

it('resumes a copy only of the same base; any other partial file is filled block by block past its checkpoint', async () => {
  const source = await open();
  fs.writeFileSync(partial, 'left by an earlier attempt');
  const same: PartialState = { ...freshState(), doneBelow: 1, cloned: { version: '1.0.0', sha256: sha(v1) } };
  await source.startFrom(partial, same, quiet);
  expect(source.isCloned).toBe(true);
  expect(fs.readFileSync(partial, 'utf8')).toBe('left by an earlier attempt');
  await source.close();

  const other = await open();
  const stale: PartialState = { ...freshState(), doneBelow: 1, cloned: { version: '1.0.0', sha256: sha(v2) } };
  await other.startFrom(partial, stale, quiet);
  expect(other.isCloned).toBe(false);
  expect(stale.cloned).toBeUndefined();
  expect(other.keptBlocks()).toEqual([]);
  const handle = await fs.promises.open(partial, 'r+');
  try {
    const { written } = await fillFile(other, handle);
    // Every block the base shares is read, checked and written.
    expect(written).toHaveLength(16);
    expect(other.readFromBase).toBe(v2.length - BLOCK);
  } finally {
    await handle.close();
    await other.close();
  }
});

it('an earlier version damaged on disk fails the SHA-256; its damaged block is found, fetched again, and the file verifies', async () => {
  const fd = fs.openSync(baseFile, 'r+');
  fs.writeSync(fd, Buffer.from('rot'), 0, 3, 12 * BLOCK + 5);
  fs.closeSync(fd);
  const source = await open();
  await source.startFrom(partial, freshState(), quiet);
  const handle = await fs.promises.open(partial, 'r+');
  try {
    const { fetch, fill } = await fillFile(source, handle);
    expect(fill.fetched).toBe(BLOCK);
    expect((await hashFile(handle, 'iso', v2.length)).sha256).not.toBe(sha(v2));
    const repaired = await repairKeptBlocks(handle, source.keptBlocks(), fetch, { format: 'iso', sizeBytes: v2.length });
    expect(repaired?.refetched.map((b) => b.start)).toEqual([12 * BLOCK]);
    expect(repaired?.hashed.sha256).toBe(sha(v2));
    expect(fs.readFileSync(partial).equals(v2)).toBe(true);
  } finally {
    await handle.close();
    await source.close();
  }
});

it('finds nothing to repair when every kept block matches its digest: the fault is elsewhere', async () => {
  const source = await open();
  await source.startFrom(partial, freshState(), quiet);
  const handle = await fs.promises.open(partial, 'r+');
  try {
    // A fetched block that is not what its digest says: no kept block is to blame.
    await source.fill(
      0,
      v2.length,
      (start, length) => handle.write(Buffer.alloc(length), 0, length, start).then(() => undefined),
      (b, at) => handle.write(b, 0, b.length, at).then(() => undefined),
    );
    const fetch = jest.fn(() => Promise.resolve());
    expect(await repairKeptBlocks(handle, source.keptBlocks(), fetch, { format: 'iso', sizeBytes: v2.length })).toBeUndefined();
    expect(fetch).not.toHaveBeenCalled();
  } finally {
    await handle.close();
    await source.close();
  }
});

describe('a copy of the earlier version that cannot be made', () => {
  afterEach(() => jest.restoreAllMocks());

  /** Fills the file block by block after the copy was given up, and checks it is the new version. */
  async function fillsAndVerifies(source: ChunkSource, state: PartialState) {
    expect(source.isCloned).toBe(false);
    expect(state.cloned).toBeUndefined();
    expect(source.keptBlocks()).toEqual([]);
    const handle = await fs.promises.open(partial, fs.constants.O_RDWR | fs.constants.O_CREAT);
    try {
      await handle.truncate(v2.length);
      const { written, fill } = await fillFile(source, handle);
      expect(written).toHaveLength(16);
      expect(fill).toEqual({ fetched: BLOCK, reused: v2.length - BLOCK });
      expect((await hashFile(handle, 'iso', v2.length)).sha256).toBe(sha(v2));
    } finally {
      await handle.close();
      await source.close();
    }
  }

  it.each(['ENOSPC', 'EPERM', 'ENOENT'])(
    '(%s half-way) is removed and the file filled block by block; it verifies',
    async (code) => {
      jest.spyOn(fs.promises, 'copyFile').mockImplementationOnce(async (_from, to) => {
        await fs.promises.writeFile(to as string, v1.subarray(0, 3 * BLOCK));
        throw Object.assign(new Error(`${code}: copy_file_range failed`), { code });
      });
      const warn = jest.fn();
      const source = await open();
      const state = freshState();
      await source.startFrom(partial, state, { warn });
      expect(fs.existsSync(partial)).toBe(false);
      expect(warn).toHaveBeenCalledWith(expect.stringMatching(/copying its blocks one by one/), {
        base: '1.0.0',
        reason: `${code}: copy_file_range failed`,
      });
      await fillsAndVerifies(source, state);
    },
  );

  it('is not tried when the file system has less room than the base takes', async () => {
    const copy = jest.spyOn(fs.promises, 'copyFile');
    jest.spyOn(fs.promises, 'statfs').mockResolvedValueOnce({ bavail: 1, bsize: BLOCK } as fs.StatsFs);
    const warn = jest.fn();
    const source = await open();
    const state = freshState();
    await source.startFrom(partial, state, { warn });
    expect(copy).not.toHaveBeenCalled();
    expect(warn.mock.calls[0][1].reason).toMatch(/has 4.0 KiB free; the download needs 64.1 KiB more/);
    await fillsAndVerifies(source, state);
  });
});
