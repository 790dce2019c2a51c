import type { Worker } from 'node:worker_threads';
import { moduleThread } from '../engine/module-thread';
import { isShared } from '../storage/block-buffers';
import { VcenterUnreachable } from './http';
import type { UploadReply, UploadRequest, UploadTarget } from './upload-thread';

/** Where a started upload's bytes go as they come. */
export interface UploadWriter {
  /** Bytes the caller never writes again: on shared memory they are sent from where they are. */
  write(bytes: Uint8Array): void;
  end(): void;
  /** Settles once at most `limit` bytes written are held unsent, or the upload is over. */
  drained(limit: number): Promise<void>;
}

/**
 * An upload to a vCenter sent from a thread of its own (./upload-thread), its bytes written as they come.
 * A streamed import sends every byte it downloads: on the event loop, the upload's encryption and socket
 * writes took as much of it as the download. Bytes on shared memory reach the thread without a copy, and
 * the caller never writes them again; other bytes are copied.
 */
export class UploadOnThread implements UploadWriter {
  /** The vCenter's answer; rejects with the signal's reason on abort, VcenterUnreachable when it hung up. */
  readonly answered: Promise<{ status: number; body: Buffer }>;
  /** Bytes written that the thread has not handed to its request's body stream yet. */
  private unsent = 0;
  private settled = false;
  private readonly waiters = new Set<() => void>();
  private readonly worker?: Worker;

  constructor(target: UploadTarget, signal: AbortSignal) {
    // An upload given up before it began starts no thread.
    if (signal.aborted) {
      this.settled = true;
      this.answered = Promise.reject(signal.reason);
      this.answered.catch(() => undefined);
      return;
    }
    const worker = moduleThread(__dirname, 'upload-thread');
    this.worker = worker;
    this.answered = new Promise((resolve, reject) => {
      const end = (settle: () => void) => {
        if (this.settled) return;
        this.settled = true;
        signal.removeEventListener('abort', abort);
        settle();
        this.wakeAll();
        void worker.terminate();
      };
      const abort = () => end(() => reject(signal.reason));
      signal.addEventListener('abort', abort, { once: true });
      worker.on('message', (reply: UploadReply) => {
        if (reply.op === 'taken') {
          this.unsent -= reply.bytes;
          this.wakeAll();
        } else if (reply.op === 'answered') {
          end(() => resolve({ status: reply.status, body: Buffer.from(reply.body) }));
        } else {
          const err = reply.name === 'VcenterUnreachable' ? new VcenterUnreachable(reply.message) : new Error(reply.message);
          end(() => reject(err));
        }
      });
      worker.on('error', (err) => end(() => reject(err)));
      worker.on('exit', (code) => end(() => reject(new Error(`the upload's thread ended (code ${code})`))));
      try {
        this.post({ op: 'start', ...target });
      } catch (err) {
        end(() => reject(err));
      }
    });
    // Observed by the caller's `answered`; a rejection nobody awaits yet must not end the process.
    this.answered.catch(() => undefined);
  }

  write(bytes: Uint8Array): void {
    if (this.settled) return;
    const shared = isShared(bytes);
    // A view of a larger buffer would be sent whole: a copy of just its bytes is moved instead.
    const own = shared ? bytes : new Uint8Array(bytes);
    this.unsent += own.byteLength;
    this.post({ op: 'bytes', bytes: own }, shared ? [] : [own.buffer as ArrayBuffer]);
  }

  end(): void {
    if (!this.settled) this.post({ op: 'end' });
  }

  async drained(limit: number): Promise<void> {
    while (this.unsent > limit && !this.settled) await new Promise<void>((resolve) => this.waiters.add(resolve));
  }

  private post(req: UploadRequest, transfer: ArrayBuffer[] = []): void {
    this.worker?.postMessage(req, transfer);
  }

  private wakeAll(): void {
    for (const wake of this.waiters) wake();
    this.waiters.clear();
  }
}
