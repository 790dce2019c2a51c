import { metrics } from '../observability/metrics';

/**
 * The bytes of block data one worker may hold at once (VMHUB_MAX_INFLIGHT_MIB): every block read for an
 * upload, a download or a hash takes its size from here first and gives it back when the bytes are no
 * longer held, so memory is bounded by this figure rather than by slots × concurrency × block size.
 * Waiters are served first come, first served. A request larger than the whole budget is admitted when
 * nothing else is held, so a block of any size still moves, alone.
 */
export interface Reservation {
  readonly bytes: number;
  /** Gives the bytes back; a second call does nothing. */
  release(): void;
}

interface Waiter {
  bytes: number;
  resolve: (r: Reservation) => void;
  signal?: AbortSignal;
  onAbort?: () => void;
}

export class ByteBudget {
  private held = 0;
  private readonly waiters: Waiter[] = [];

  constructor(readonly capacity: number) {
    if (!(capacity > 0)) throw new RangeError(`a byte budget needs a positive capacity, got ${capacity}`);
  }

  get heldBytes(): number {
    return this.held;
  }

  get waiting(): number {
    return this.waiters.length;
  }

  /** Waits until `bytes` (at most the capacity) fit, then holds them. A signal that aborts first rejects with its reason. */
  acquire(bytes: number, signal?: AbortSignal): Promise<Reservation> {
    const wanted = Math.min(Math.max(0, bytes), this.capacity);
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.waiters.length === 0 && this.fits(wanted)) return Promise.resolve(this.hold(wanted));
    return new Promise<Reservation>((resolve, reject) => {
      const waiter: Waiter = { bytes: wanted, resolve, signal };
      if (signal) {
        waiter.onAbort = () => {
          this.waiters.splice(this.waiters.indexOf(waiter), 1);
          reject(signal.reason);
          this.serve();
        };
        signal.addEventListener('abort', waiter.onAbort, { once: true });
      }
      this.waiters.push(waiter);
    });
  }

  private fits(bytes: number): boolean {
    return this.held === 0 || this.held + bytes <= this.capacity;
  }

  private hold(bytes: number): Reservation {
    this.held += bytes;
    metrics.byteBudgetUsed.inc(bytes);
    let released = false;
    return {
      bytes,
      release: () => {
        if (released) return;
        released = true;
        this.held -= bytes;
        metrics.byteBudgetUsed.dec(bytes);
        this.serve();
      },
    };
  }

  private serve(): void {
    while (this.waiters.length > 0 && this.fits(this.waiters[0].bytes)) {
      const waiter = this.waiters.shift()!;
      if (waiter.onAbort) waiter.signal!.removeEventListener('abort', waiter.onAbort);
      waiter.resolve(this.hold(waiter.bytes));
    }
  }
}
