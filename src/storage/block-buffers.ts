import { metrics } from '../observability/metrics';

/**
 * Block-sized buffers on shared memory, used again block after block. A block read into one is hashed
 * on a hashing thread in place (the thread sees the same memory: nothing is copied or moved), uploaded,
 * and given back for the next block. A fresh block-sized buffer per block would cost page faults on new
 * memory and, worse, a garbage collection every block or two, which V8 runs under that much external
 * memory; these cost neither. Idle buffers fit in `room()` (what the byte budget does not hold now), so
 * blocks in flight and idle ones stay within the budget; the sizes given back longest ago (a finished
 * image's last block, say) go first, and all go once none was given back for `idleMs`.
 */
export class BlockBuffers {
  /** Free buffers by size, the size given back longest ago first. */
  private readonly free = new Map<number, Buffer[]>();
  private idleBytes = 0;
  private trim?: NodeJS.Timeout;

  constructor(
    private readonly room: () => number,
    private readonly idleMs = 10_000,
  ) {}

  /** A buffer of exactly `size` bytes, whatever it held before. */
  take(size: number): Buffer {
    const list = this.free.get(size);
    const buffer = list?.pop();
    if (!buffer) return Buffer.from(new SharedArrayBuffer(size));
    this.noteIdle(-size);
    if (list!.length === 0) this.free.delete(size);
    return buffer;
  }

  /** The caller, and everyone it lent the buffer to, is done with it. */
  give(buffer: Buffer): void {
    if (buffer.length > this.room()) return;
    const list = this.free.get(buffer.length) ?? [];
    this.free.delete(buffer.length);
    this.free.set(buffer.length, list);
    list.push(buffer);
    this.noteIdle(buffer.length);
    while (this.idleBytes > this.room()) {
      const [size, oldest] = this.free.entries().next().value!;
      oldest.pop();
      this.noteIdle(-size);
      if (oldest.length === 0) this.free.delete(size);
    }
    clearTimeout(this.trim);
    this.trim = setTimeout(() => {
      this.free.clear();
      this.noteIdle(-this.idleBytes);
    }, this.idleMs).unref();
  }

  private noteIdle(bytes: number): void {
    this.idleBytes += bytes;
    metrics.bufferPoolBytes.inc(bytes);
  }

  /** Buffers waiting to be taken, for tests. */
  get idle(): number {
    let n = 0;
    for (const list of this.free.values()) n += list.length;
    return n;
  }
}

/** Whether bytes live on shared memory: a thread given them reads them in place. */
export function isShared(bytes: Uint8Array): boolean {
  return bytes.buffer instanceof SharedArrayBuffer;
}
