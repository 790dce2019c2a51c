import os from 'node:os';
import { types } from 'node:util';
import type { Worker } from 'node:worker_threads';
import { VmhubError, type ErrorType } from '../shared/errors';
import type { ImageFormat } from '../shared/image-format';
import type { ImageMetadata, InspectOptions } from '../images/inspect';
import type { OvfEnvelope } from '../images/ovf/envelope';
import { isShared } from './block-buffers';
import type { ErrorShape, HashReply, HashRequest } from './hashing-thread';
import { metrics } from '../observability/metrics';
import { moduleThread } from '../engine/module-thread';

/**
 * SHA-256 on worker threads: hashing a block costs milliseconds of CPU, and on the event loop it would
 * hold up every transfer the process drives (Node's WebCrypto digest runs on the calling thread too).
 * A small pool, shared by the whole process, started on first use.
 *
 * Bytes on shared memory (./block-buffers) are read by the thread in place, and the caller keeps them
 * untouched until it answers. Other bytes reach a thread either copied (`sha256`, `ImageStream.push`), or
 * moved (`sha256Moving`): a moved buffer's memory goes to the thread without a copy and the caller's
 * Buffer is left empty, so only bytes the caller is done with, or gets back, are moved.
 */
type Pending = { resolve: (reply: HashReply) => void; reject: (err: unknown) => void };

class HashThread {
  readonly worker: Worker;
  readonly pending = new Map<number, Pending>();
  streams = 0;
  dead?: Error;

  constructor() {
    this.worker = moduleThread(__dirname, 'hashing-thread');
    this.worker.on('message', (reply: HashReply) => {
      const p = this.pending.get(reply.id);
      if (!p) return;
      this.pending.delete(reply.id);
      metrics.hashingQueueDepth.dec();
      if (this.pending.size === 0) this.worker.unref();
      p.resolve(reply);
    });
    const die = (err: Error) => {
      this.dead ??= err;
      for (const p of this.pending.values()) p.reject(err);
      metrics.hashingQueueDepth.dec(this.pending.size);
      this.pending.clear();
    };
    this.worker.on('error', die);
    this.worker.on('exit', (code) => die(new Error(`hashing thread exited with code ${code}`)));
    // An idle pool never keeps the process alive; a thread is held only while it has work.
    this.worker.unref();
  }

  send(request: HashRequest, transfer: ArrayBuffer[] = []): Promise<HashReply> {
    if (this.dead) return Promise.reject(this.dead);
    return new Promise<HashReply>((resolve, reject) => {
      if (this.pending.size === 0) this.worker.ref();
      this.pending.set(request.id, { resolve, reject });
      metrics.hashingQueueDepth.inc();
      try {
        this.worker.postMessage(request, transfer);
      } catch (err) {
        // Never sent (bytes that cannot be cloned or moved): no reply will settle it, nor free the thread.
        this.pending.delete(request.id);
        metrics.hashingQueueDepth.dec();
        if (this.pending.size === 0) this.worker.unref();
        throw err;
      }
    }).then((reply) => {
      if (reply.error) throw rebuild(reply.error);
      return reply;
    });
  }
}

function rebuild(error: ErrorShape): Error {
  return error.type ? new VmhubError(error.type as ErrorType, error.message) : new Error(error.message);
}

/** The buffer whose memory is sent: its own when it spans all of it, else a copy that does. */
function movable(bytes: Uint8Array): { bytes: Uint8Array; transfer: ArrayBuffer[] } {
  const whole = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength && types.isArrayBuffer(bytes.buffer);
  const own = whole ? bytes : new Uint8Array(bytes);
  return { bytes: own, transfer: [own.buffer as ArrayBuffer] };
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

let nextId = 1;

export class HashPool {
  private readonly threads: HashThread[] = [];

  /**
   * `size` threads serve every caller: the event loop keeps a core to itself, as it drives the transfers.
   * Digests asked for with `everyCore` may use `widest` threads, one a core: a caller that sends few of
   * the bytes it hashes leaves the event loop little to drive. Image streams stay on the first `size`.
   * A thread, once started, stays (about 10 MiB each).
   */
  constructor(
    readonly size = Math.max(1, Math.min(4, os.availableParallelism() - 1)),
    readonly widest = Math.max(size, Math.min(4, os.availableParallelism())),
  ) {}

  private thread(i: number): HashThread {
    if (!this.threads[i] || this.threads[i].dead) this.threads[i] = new HashThread();
    return this.threads[i];
  }

  /**
   * The thread with the least work queued among the first `count` that `eligible` allows, for a single
   * digest; among all of them when it allows none.
   */
  private leastBusy(count = this.size, eligible: (t: HashThread) => boolean = () => true): HashThread {
    let [best, any] = [undefined as HashThread | undefined, this.thread(0)];
    for (let i = 0; i < count; i++) {
      const t = this.thread(i);
      if (t.pending.size < any.pending.size) any = t;
      if (eligible(t) && (!best || t.pending.size < best.pending.size)) best = t;
    }
    return best ?? any;
  }

  /**
   * SHA-256 (hex) of bytes: read in place when shared, else of a copy. `everyCore`: the caller sends few
   * of the bytes it hashes (a publish whose blob already holds an earlier version's blocks), so hashing
   * may take the core the transfers would otherwise need.
   */
  async sha256(bytes: Uint8Array, options: { everyCore?: boolean } = {}): Promise<string> {
    // With `everyCore`, a thread that carries no image stream where there is one: a digest queued among a
    // stream's pushes holds them up, and the stream's bytes are the other half of the hashing.
    const thread = options.everyCore ? this.leastBusy(this.widest, (t) => t.streams === 0) : this.leastBusy();
    return (await thread.send({ id: nextId++, op: 'sha256', bytes, giveBack: false })).hex!;
  }

  /** SHA-256 (hex) of bytes moved to a thread and back: the caller uses the returned buffer, not its own. */
  async sha256Moving(bytes: Buffer): Promise<{ hex: string; bytes: Buffer }> {
    const moved = movable(bytes);
    const reply = await this.leastBusy().send({ id: nextId++, op: 'sha256', bytes: moved.bytes, giveBack: true }, moved.transfer);
    return { hex: reply.hex!, bytes: asBuffer(reply.bytes!) };
  }

  /**
   * An OVF descriptor parsed on a thread, never on the event loop: bounded by XML_LIMITS, yet up to
   * 4 MiB of XML. Always the first thread, whose cache (../images/ovf/descriptor) then serves every
   * later parse of the same bytes, including its image streams' inspections.
   */
  async descriptor(bytes: Buffer): Promise<OvfEnvelope> {
    return (await this.thread(0).send({ id: nextId++, op: 'descriptor', bytes })).envelope!;
  }

  /**
   * An image stream on the thread with the fewest streams: blocks pushed in order, then the whole-image
   * SHA-256 and metadata (the inspector told `inspect`).
   */
  async openStream(format?: ImageFormat, inspect?: InspectOptions): Promise<ImageStream> {
    let best = 0;
    for (let i = 1; i < this.size; i++) if (this.thread(i).streams < this.thread(best).streams) best = i;
    const thread = this.thread(best);
    const stream = nextId++;
    await thread.send({ id: nextId++, op: 'open', stream, format, inspect });
    thread.streams++;
    return new ImageStream(thread, stream);
  }
}

/** The whole-image hash (and, with a format, the inspector) of one image, fed its bytes in order. */
export class ImageStream {
  private closed = false;

  constructor(
    private readonly thread: HashThread,
    private readonly stream: number,
  ) {}

  /**
   * Sends the next bytes of the image to the stream's thread: shared bytes are read there in place, and
   * the caller keeps them until this resolves; others are copied before this returns, so the caller may
   * let go of them at once. Resolves once they are taken in, with their own SHA-256 when `digest` is asked
   * for, and the inspector's failure once it has failed. Pushes may overlap: the thread takes them in the
   * order made.
   */
  push(bytes: Buffer, options: { digest: boolean }): Promise<{ sha256?: string; invalid?: Error }> {
    // A copy made here and moved costs one copy; a posted (cloned) buffer would cost two.
    const sent = isShared(bytes) ? { bytes, transfer: [] } : movable(new Uint8Array(bytes));
    return this.thread
      .send({ id: nextId++, op: 'push', stream: this.stream, bytes: sent.bytes, digest: options.digest }, sent.transfer)
      .then((reply) => ({ sha256: reply.hex, invalid: reply.invalid && rebuild(reply.invalid) }));
  }

  /**
   * Has the thread read the next `length` bytes of the image from the open file `fd` at `position`, for
   * bytes that are on disk already. The caller keeps the file open until the stream is finished or its
   * `close` has resolved. Resolves once they are taken in, with the inspector's failure once it has failed.
   */
  pushFile(fd: number, position: number, length: number): Promise<{ invalid?: Error }> {
    return this.thread
      .send({ id: nextId++, op: 'pushFile', stream: this.stream, fd, position, length })
      .then((reply) => ({ invalid: reply.invalid && rebuild(reply.invalid) }));
  }

  /**
   * The SHA-256 of everything pushed and, when the stream has an inspector, its metadata or else its
   * failure (an invalid image), which the caller judges after the SHA-256.
   */
  async finish(): Promise<{ sha256: string; metadata?: ImageMetadata; invalid?: Error }> {
    const reply = await this.thread.send({ id: nextId++, op: 'finish', stream: this.stream });
    this.release();
    return { sha256: reply.hex!, metadata: reply.metadata, invalid: reply.invalid && rebuild(reply.invalid) };
  }

  /**
   * Drops the stream without a result (after a failure or a cancel). Resolves, never rejects, once the
   * thread has let go of it: from then on it reads no file the stream was pushed.
   */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.release();
    return this.thread.send({ id: nextId++, op: 'close', stream: this.stream }).then(
      () => undefined,
      () => undefined,
    );
  }

  private release(): void {
    if (!this.closed) this.thread.streams--;
    this.closed = true;
  }
}

let shared: HashPool | undefined;

/** The process's hashing pool. */
export function hashPool(): HashPool {
  shared ??= new HashPool();
  return shared;
}
