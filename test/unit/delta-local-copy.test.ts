import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { blockIndexPath } from '../../src/deploy/block-index';
import { ChunkSource } from '../../src/deploy/local-copy';
import { blockDigestOf, blockId } from '../../src/storage/block-ids';
import type { BlockStore } from '../../src/storage/block-store';

/**
 * ChunkSource against a datastore on disk and a stand-in blob: which bytes it copies from an earlier
 * version, which it fetches, and that every copied block is checked against its digest.
 */
const BLOCK = 1024;
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

function bytes(size: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  let x = seed;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

function blockList(image: Buffer): { name: string; size: number }[] {
  const list = [];
  for (let i = 0; i * BLOCK < image.length; i++) {
    const block = image.subarray(i * BLOCK, (i + 1) * BLOCK);
    list.push({ name: blockId(i, blockDigestOf(sha(block))), size: block.length });
  }
  return list;
}

/** A store whose blobs' committed block list is the given one; nothing else of it is used. */
const storeOf = (list: { name: string; size: number }[]) =>
  ({ committedBlocks: () => Promise.resolve(list) }) as unknown as BlockStore;

const v1 = bytes(10 * BLOCK + 300, 1);
const v2 = Buffer.from(v1);
v2.fill(7, 4 * BLOCK + 10, 4 * BLOCK + 20); // block 4 changed
v2.fill(9, 10 * BLOCK + 5, 10 * BLOCK + 6); // the short last block changed
const image = { image: 'img', version: '1.0.1', sha256: sha(v2), sizeBytes: v2.length };

let root: string;
let baseFile: string;

beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'vmhub-local-copy-'));
  fs.mkdirSync(path.join(root, 'img', '1.0.0'), { recursive: true });
  baseFile = path.join(root, 'img', '1.0.0', 'img-1.0.0.iso');
  fs.writeFileSync(baseFile, v1);
  fs.writeFileSync(`${baseFile}.sha256`, `${sha(v1)}  img-1.0.0.iso\n`);
  const digests = blockList(v1).map((b) => Buffer.from(b.name, 'base64').toString().slice(7));
  fs.writeFileSync(
    blockIndexPath(baseFile),
    JSON.stringify({ sha256: sha(v1), sizeBytes: v1.length, blockSize: BLOCK, digests }),
  );
});
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

/** Reads the whole image through the source in chunks of `chunk` bytes, fetching from v2. */
async function readAll(source: ChunkSource, chunk: number) {
  const out = Buffer.alloc(v2.length);
  const fetched: Array<[number, number]> = [];
  let reused = 0;
  for (let at = 0; at < v2.length; at += chunk) {
    const end = Math.min(at + chunk, v2.length);
    const fill = await source.fill(
      at,
      end,
      (start, length) => {
        fetched.push([start, start + length]);
        v2.copy(out, start, start, start + length);
        return Promise.resolve();
      },
      (bytes, start) => {
        bytes.copy(out, start);
        return Promise.resolve();
      },
    );
    reused += fill.reused;
    expect(fill.fetched + fill.reused).toBe(end - at);
  }
  await source.close();
  return { out, fetched, reused };
}

const open = (reuse = true, list = blockList(v2)) =>
  ChunkSource.open(storeOf(list), 'img/1.0.1/img-1.0.1.iso', image, root, { reuse, abortSignal: new AbortController().signal });

it('copies the shared blocks from the earlier version and fetches only the changed ones', async () => {
  const source = await open();
  expect(source.base?.version).toBe('1.0.0');
  expect(source.reusable).toBe(9 * BLOCK);
  expect(source.index?.digests).toHaveLength(11);
  const { out, fetched, reused } = await readAll(source, 4 * BLOCK);
  expect(out.equals(v2)).toBe(true);
  expect(fetched).toEqual([
    [4 * BLOCK, 5 * BLOCK],
    [10 * BLOCK, v2.length],
  ]);
  expect(reused).toBe(9 * BLOCK);
  expect(source.mismatches).toBe(0);
});

it('reads the blocks it copies into buffers used again once written, as many as lanes copy at once', async () => {
  const source = await open();
  const out = Buffer.alloc(v2.length);
  /** Each buffer written from, by its memory and where in it: small buffers share Node's pool. */
  const memory = new Map<ArrayBufferLike, number>();
  const used = new Set<string>();
  const chunks = Array.from({ length: Math.ceil(v2.length / (2 * BLOCK)) }, (_, i) => i * 2 * BLOCK);
  const fill = (at: number) =>
    source.fill(
      at,
      Math.min(at + 2 * BLOCK, v2.length),
      (start, length) => Promise.resolve(void v2.copy(out, start, start, start + length)),
      // A write that takes a while, as a disk's does: the buffer must stay as it is until it resolves.
      async (bytes, start) => {
        if (!memory.has(bytes.buffer)) memory.set(bytes.buffer, memory.size);
        used.add(`${memory.get(bytes.buffer)}:${bytes.byteOffset}`);
        await new Promise((resolve) => setImmediate(resolve));
        bytes.copy(out, start);
      },
    );
  // Three lanes, each taking the next chunk as it finishes one.
  let next = 0;
  await Promise.all(
    [0, 1, 2].map(async () => {
      while (next < chunks.length) await fill(chunks[next++]);
    }),
  );
  await source.close();
  expect(out.equals(v2)).toBe(true);
  // A fresh buffer for each of the nine copies would have the agent's heap collected every few chunks.
  expect(used.size).toBeLessThanOrEqual(3);
});

it('copies parts of blocks when chunks do not fall on block boundaries, checking each whole block', async () => {
  const { out, fetched, reused } = await readAll(await open(), 1536);
  expect(out.equals(v2)).toBe(true);
  expect(reused).toBe(9 * BLOCK);
  expect(fetched.reduce((n, [a, b]) => n + b - a, 0)).toBe(v2.length - 9 * BLOCK);
});

it('fetches a block whose bytes on disk do not match its digest', async () => {
  const fd = fs.openSync(baseFile, 'r+');
  fs.writeSync(fd, Buffer.from('x'), 0, 1, 2 * BLOCK + 1);
  fs.closeSync(fd);
  const source = await open();
  const { out, fetched, reused } = await readAll(source, 4 * BLOCK);
  expect(out.equals(v2)).toBe(true);
  expect(fetched).toContainEqual([2 * BLOCK, 3 * BLOCK]);
  expect(reused).toBe(8 * BLOCK);
  expect(source.mismatches).toBe(1);
});

it('fetches everything when told not to reuse, and still knows the new index', async () => {
  const source = await open(false);
  expect(source.base).toBeUndefined();
  expect(source.index?.blockSize).toBe(BLOCK);
  const { out, reused } = await readAll(source, 4 * BLOCK);
  expect(out.equals(v2)).toBe(true);
  expect(reused).toBe(0);
});

it('fetches everything and keeps no index for a blob whose block list vmhub did not commit', async () => {
  const source = await open(true, [{ name: Buffer.from('not-ours').toString('base64'), size: v2.length }]);
  expect(source.index).toBeUndefined();
  expect(source.base).toBeUndefined();
  const { reused } = await readAll(source, 4 * BLOCK);
  expect(reused).toBe(0);
});
