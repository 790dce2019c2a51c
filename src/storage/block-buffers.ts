/**
 * Block-sized buffers on shared memory, used again block after block. A block read into one is hashed
 * on a hashing thread in place (the thread sees the same memory: nothing is copied or moved), uploaded,
 * and given back for the next block. A fresh block-sized buffer per block would cost page faults on new
 * memory and, worse, a garbage collection every block or two, which V8 runs under that much external
 * memory; these cost neither. Buffers nobody took for `idleMs` are let go.
 */
export class BlockBuffers {
  private readonly free = new Map<number, Buffer[]>();
  private trim?: NodeJS.Timeout;

  constructor(private readonly idleMs = 10_000) {}

  /** A buffer of exactly `size` bytes, whatever it held before. */
  take(size: number): Buffer {
    return this.free.get(size)?.pop() ?? Buffer.from(new SharedArrayBuffer(size));
  }

  /** The caller, and everyone it lent the buffer to, is done with it. */
  give(buffer: Buffer): void {
    const list = this.free.get(buffer.length) ?? [];
    list.push(buffer);
    this.free.set(buffer.length, list);
    clearTimeout(this.trim);
    this.trim = setTimeout(() => this.free.clear(), this.idleMs).unref();
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
