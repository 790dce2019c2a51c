import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { VmhubError } from '../../src/shared/errors';
import { blockDigest } from '../../src/storage/block-ids';
import { HashPool } from '../../src/storage/hashing';

const MiB = 1024 * 1024;
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

function bytes(size: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

describe('HashPool', () => {
  const pool = new HashPool(2);

  it('hashes a copy, leaving the bytes to the caller', async () => {
    const b = bytes(3 * MiB + 5, 1);
    await expect(pool.sha256(b)).resolves.toBe(sha256(b));
    expect(b.length).toBe(3 * MiB + 5);
    await expect(blockDigest(b)).resolves.toBe(sha256(b).slice(0, 32));
  });

  it('hashes shared bytes in place, leaving them to the caller', async () => {
    const b = Buffer.from(new SharedArrayBuffer(2 * MiB));
    bytes(2 * MiB, 6).copy(b);
    await expect(pool.sha256(b)).resolves.toBe(sha256(b));
    expect(b.equals(bytes(2 * MiB, 6))).toBe(true);
  });

  it('moves bytes to a thread and back without changing them', async () => {
    const b = bytes(2 * MiB, 2);
    const want = sha256(b);
    const copy = Buffer.from(b);
    const moved = await pool.sha256Moving(b);
    expect(moved.hex).toBe(want);
    expect(moved.bytes.equals(copy)).toBe(true);
    expect(b.length).toBe(0);
  });

  it('copies a view that shares its memory instead of moving it', async () => {
    const whole = bytes(MiB, 3);
    const view = whole.subarray(100, 200);
    const moved = await pool.sha256Moving(view);
    expect(moved.hex).toBe(sha256(whole.subarray(100, 200)));
    expect(whole.length).toBe(MiB);
  });

  it('hashes an image pushed in order, block digests on request, and inspects it', async () => {
    const image = Buffer.alloc(3 * MiB);
    image.write('\x01CD001\x01', 32768, 'latin1');
    const want = sha256(image);
    const parts = [0, 1, 2].map((i) => Buffer.from(image.subarray(i * MiB, (i + 1) * MiB)));
    // Shared bytes are read in place and stay the caller's; others are copied.
    const shared = Buffer.from(new SharedArrayBuffer(MiB));
    parts[0].copy(shared);
    const stream = await pool.openStream('iso');
    const digests = await Promise.all([
      stream.push(shared, { digest: true }),
      stream.push(parts[1], { digest: false }),
      stream.push(parts[2], { digest: true }),
    ]);
    expect(shared.equals(parts[0])).toBe(true);
    expect(parts[1].length).toBe(MiB);
    expect(digests.map((d) => d.sha256)).toEqual([sha256(image.subarray(0, MiB)), undefined, sha256(image.subarray(2 * MiB))]);
    expect(digests.every((d) => d.invalid === undefined)).toBe(true);
    const { sha256: whole, metadata } = await stream.finish();
    expect(whole).toBe(want);
    expect(metadata).toMatchObject({ kind: 'iso' });
  });

  it('takes digests asked for with everyCore on the threads beyond its size, which carry no image stream', async () => {
    const narrow = new HashPool(1, 2);
    const small = bytes(64 * 1024, 7);
    // Two at once: the second goes to the second thread, which has then loaded and answered.
    await Promise.all([narrow.sha256(small, { everyCore: true }), narrow.sha256(small, { everyCore: true })]);
    const stream = await narrow.openStream();
    // A long push holds the first thread: a digest there answers after it, one beyond it before.
    const long = Buffer.from(new SharedArrayBuffer(128 * MiB));
    const order: string[] = [];
    await Promise.all([
      stream.push(long, { digest: false }).then(() => order.push('push')),
      narrow.sha256(small).then(() => order.push('plain')),
      narrow.sha256(small, { everyCore: true }).then(() => order.push('everyCore')),
    ]);
    expect(order).toEqual(['everyCore', 'push', 'plain']);
    await stream.close();
  });

  it('reports an inspector failure as the typed error, and still hashes the whole image', async () => {
    const stream = await pool.openStream('ova');
    const junk = Buffer.alloc(4096, 0xff);
    const more = bytes(MiB, 4);
    const want = sha256(Buffer.concat([junk, more]));
    const first = await stream.push(junk, { digest: false });
    expect(first.invalid).toBeInstanceOf(VmhubError);
    expect(first.invalid).toMatchObject({ type: 'InvalidImage' });
    expect((await stream.push(more, { digest: false })).invalid).toMatchObject({ type: 'InvalidImage' });
    const end = await stream.finish();
    expect(end.sha256).toBe(want);
    expect(end.metadata).toBeUndefined();
    expect(end.invalid).toMatchObject({ type: 'InvalidImage' });
  });

  it('reads bytes pushed as ranges of a file itself, in pieces, in the order pushed, with the bytes pushed in memory', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hashing-'));
    const image = bytes(2 * MiB + 123, 5);
    image.write('\x01CD001\x01', 32768, 'latin1');
    fs.writeFileSync(path.join(dir, 'image.iso'), image);
    const handle = await fs.promises.open(path.join(dir, 'image.iso'), 'r');
    try {
      const stream = await pool.openStream('iso');
      const answers = await Promise.all([
        stream.pushFile(handle.fd, 0, MiB + 7),
        stream.push(Buffer.from(image.subarray(MiB + 7, MiB + 100)), { digest: false }),
        stream.pushFile(handle.fd, MiB + 100, image.length - MiB - 100),
      ]);
      expect(answers.every((a) => a.invalid === undefined)).toBe(true);
      const { sha256: whole, metadata } = await stream.finish();
      expect(whole).toBe(sha256(image));
      expect(metadata).toMatchObject({ kind: 'iso' });
      // A range past the end of the file is an error, not a short hash.
      const short = await pool.openStream();
      await expect(short.pushFile(handle.fd, image.length - 10, 20)).rejects.toThrow(/ends at offset/);
      await short.close();
    } finally {
      await handle.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('answers a close only once the pushes queued before it have let go of their file', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hashing-'));
    fs.writeFileSync(path.join(dir, 'big.bin'), bytes(16 * MiB, 6));
    const handle = await fs.promises.open(path.join(dir, 'big.bin'), 'r');
    try {
      const stream = await pool.openStream();
      const pushes = [0, 1, 2, 3].map((i) => stream.pushFile(handle.fd, i * 4 * MiB, 4 * MiB));
      const settled: boolean[] = [];
      for (const p of pushes)
        void p.then(
          () => settled.push(true),
          () => settled.push(false),
        );
      await stream.close();
      expect(settled).toHaveLength(4);
    } finally {
      await handle.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
