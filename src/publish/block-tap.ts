import type { Reservation } from '../storage/byte-budget';
import type { BlockRange } from '../shared/block-plan';

/**
 * How one publish's staging and inspection share the work inside one worker process, so that in the
 * common case every byte is read from the source once and hashed once for its block ID:
 *
 * - Staging: the range activities of a publish that run in this process register their ranges here,
 *   and their lanes take blocks lowest first across all of them, at most `slots` at a time, none
 *   further than `window` blocks past the first one not yet staged, and none further than `lead` blocks
 *   past the one the inspector is at (block 0 while one is awaited: for a moment after the publish
 *   starts here, unless an inspection of it was already seen or already missed here). Blocks are then
 *   read nearly in image order whichever range they belong to, a range that is alone (the last one, or
 *   while the next is being scheduled) still keeps every slot busy, and an inspector that starts late or
 *   falls behind (a starved machine) slows the staging rather than reading the source a second time.
 * - The tap: a lane that has read and digested a block offers it here before uploading it, and the
 *   inspection of the same publish in this process takes the blocks in order instead of reading and
 *   hashing them again. The taps of a process hold at most `limitBytes` of blocks between them, each
 *   keeping the ones its inspector needs soonest. A block it does not have and will not get (staged on
 *   another worker, dropped, or of a range no lane here covers) the inspector reads itself, so ranges
 *   spread over several workers are still verified end to end.
 *
 * Nothing here is durable: a crash loses it, and the activities' own checkpoints resume the work.
 */

/**
 * A block's bytes and their share of the byte budget, held by one party or more (the lane uploading
 * them, the tap, the inspector); the last to let go hands the bytes to `letGo` (the buffer pool) and
 * gives the budget back.
 */
export class HeldBytes {
  private holders = 1;
  private pinned = false;

  constructor(
    readonly bytes: Buffer,
    private readonly reservation: Reservation,
    private readonly letGo: (bytes: Buffer) => void,
  ) {}

  share(): this {
    this.holders++;
    return this;
  }

  /** A request that failed may still read the bytes: they are never used again, only dropped. */
  pin(): void {
    this.pinned = true;
  }

  release(): void {
    if (--this.holders > 0) return;
    this.reservation.release();
    if (!this.pinned) this.letGo(this.bytes);
  }
}

export interface TapBlock {
  index: number;
  /** The block's digest, as its ID carries it. */
  digest: string;
  /** The caller's share of the bytes: it releases it when done with them. */
  held: HeldBytes;
}

/**
 * How long a publish starting here waits for its inspector (staging holds back, the tap keeps blocks for
 * it), and how long the inspector waits for a block no lane here has registered yet before reading it itself.
 */
export const INSPECT_GRACE_MS = 1_000;

export class StagingRange {
  /** Lowest index not yet handed out; blocks given back after a failed attempt wait in `returned`. */
  private next: number;
  private readonly returned: number[] = [];
  /** Per block: 1 once offered to the tap, 2 once staged. */
  private readonly state: Uint8Array;
  private remaining: number;
  /** The first block not yet staged. */
  private low: number;
  registered = true;

  constructor(
    readonly first: number,
    readonly end: number,
    from: number,
  ) {
    this.next = Math.max(first, Math.min(from, end));
    this.state = new Uint8Array(end - first).fill(2, 0, this.next - first);
    this.remaining = end - this.next;
    this.low = this.next;
  }

  get finished(): boolean {
    return this.remaining === 0;
  }

  covers(i: number): boolean {
    return i >= this.first && i < this.end;
  }

  /** Whether a lane of this range is still to offer block i. */
  owes(i: number): boolean {
    return this.state[i - this.first] === 0;
  }

  /** The first block not yet staged: what a checkpoint records. */
  firstNotDone(): number {
    return this.low;
  }

  lowestPending(): number {
    const fresh = this.next < this.end ? this.next : Infinity;
    return this.returned.length > 0 ? Math.min(this.returned[0], fresh) : fresh;
  }

  take(i: number): void {
    if (this.returned[0] === i) this.returned.shift();
    else this.next++;
  }

  giveBack(i: number): void {
    this.state[i - this.first] = 0;
    this.returned.push(i);
    this.returned.sort((a, b) => a - b);
  }

  markOffered(i: number): void {
    if (this.state[i - this.first] === 0) this.state[i - this.first] = 1;
  }

  markDone(i: number): void {
    if (this.state[i - this.first] === 2) return;
    this.state[i - this.first] = 2;
    this.remaining--;
    while (this.low < this.end && this.state[this.low - this.first] === 2) this.low++;
  }
}

export interface Claim {
  index: number;
  range: StagingRange;
}

interface ClaimWaiter {
  owner: StagingRange;
  resolve: (claim: Claim | undefined) => void;
}

/** The bytes the taps of a process may hold between them, and hold now. */
export interface TapRoom {
  readonly limitBytes: number;
  heldBytes: number;
}

export class PublishTap {
  private readonly ranges = new Set<StagingRange>();
  private readonly claimWaiters: ClaimWaiter[] = [];
  private inFlight = 0;
  private readonly held = new Map<number, TapBlock>();
  private readonly listeners = new Set<() => void>();
  /** Counts registrations, and the highest block end any range here ever had: see `take`. */
  private registrations = 0;
  private highestEnd = 0;
  private inspector?: { next: number; graceSpentAt: number };
  /** Until an inspector attaches or the grace ends: staging waits for it, and the tap keeps blocks for it. */
  private awaiting: boolean;
  private graceTimer?: NodeJS.Timeout;
  /** The inspector more than `lead` behind the staging, and whether that has lasted the grace: see `inspectorBound`. */
  private lag?: { graceOver: boolean; timer: NodeJS.Timeout };
  private readonly room: TapRoom;
  readonly window: number;
  readonly lead: number;
  private readonly onIdle: () => void;
  /** Called once an inspector was attached or the grace ended without one. */
  private readonly onSettled: () => void;

  constructor(
    readonly blockCount: number,
    readonly slots: number,
    limit: number | TapRoom,
    options: { awaitInspector?: boolean; onIdle?: () => void; onSettled?: () => void; window?: number; lead?: number } = {},
  ) {
    this.room = typeof limit === 'number' ? { limitBytes: limit, heldBytes: 0 } : limit;
    this.window = options.window ?? 2 * slots;
    this.lead = options.lead ?? slots;
    this.onIdle = options.onIdle ?? (() => undefined);
    this.onSettled = options.onSettled ?? (() => undefined);
    this.awaiting = options.awaitInspector ?? false;
    if (this.awaiting) this.graceTimer = setTimeout(() => this.graceOver(), INSPECT_GRACE_MS).unref();
  }

  get idle(): boolean {
    return this.ranges.size === 0 && !this.inspector && this.held.size === 0;
  }

  // ---- staging ----

  /** Registers a range whose blocks below `from` are already staged. */
  register(range: BlockRange, from: number): StagingRange {
    const r = new StagingRange(range.first, range.first + range.count, from);
    // A range across the gap the inspector lags over may be the one that gap waits for: a lag that goes on
    // is another, with a grace of its own. One beyond the staging changes nothing of the lag.
    if (this.lag && r.first < this.stagingBase() && r.end > (this.inspector?.next ?? 0)) this.forgetLag();
    this.ranges.add(r);
    this.registrations++;
    this.highestEnd = Math.max(this.highestEnd, r.end);
    this.changed();
    return r;
  }

  unregister(r: StagingRange): void {
    r.registered = false;
    this.ranges.delete(r);
    this.changed();
  }

  /**
   * The lowest block waiting among every range registered here, once a slot is free and the block is
   * within the window and within `lead` of the inspector; undefined once `owner`'s range is finished or
   * unregistered (its lanes stop).
   */
  claim(owner: StagingRange, signal: AbortSignal): Promise<Claim | undefined> {
    if (signal.aborted) return Promise.reject(signal.reason);
    return new Promise<Claim | undefined>((resolve, reject) => {
      const waiter: ClaimWaiter = {
        owner,
        resolve: (claim) => {
          signal.removeEventListener('abort', onAbort);
          resolve(claim);
        },
      };
      const onAbort = () => {
        const at = this.claimWaiters.indexOf(waiter);
        if (at >= 0) this.claimWaiters.splice(at, 1);
        reject(signal.reason);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.claimWaiters.push(waiter);
      this.pump();
    });
  }

  /** A claimed block is staged. */
  complete(claim: Claim): void {
    this.inFlight--;
    claim.range.markDone(claim.index);
    this.changed();
  }

  /** A claimed block was not staged (the attempt failed or was cancelled): it waits for another lane. */
  giveBack(claim: Claim): void {
    this.inFlight--;
    if (claim.range.registered) claim.range.giveBack(claim.index);
    this.changed();
  }

  private pump(): void {
    for (let w = 0; w < this.claimWaiters.length;) {
      const waiter = this.claimWaiters[w];
      if (waiter.owner.finished || !waiter.owner.registered) {
        this.claimWaiters.splice(w, 1);
        waiter.resolve(undefined);
      } else w++;
    }
    while (this.claimWaiters.length > 0 && this.inFlight < this.slots) {
      let best: StagingRange | undefined;
      for (const r of this.ranges) if (r.lowestPending() < (best?.lowestPending() ?? Infinity)) best = r;
      if (!best) return;
      const base = this.stagingBase();
      const index = best.lowestPending();
      if (index >= base + this.window || index >= this.inspectorBound(base)) return;
      best.take(index);
      this.inFlight++;
      this.claimWaiters.shift()!.resolve({ index, range: best });
    }
  }

  /** The first block not yet staged among the ranges registered here (Infinity when all are staged). */
  private stagingBase(): number {
    let base = Infinity;
    for (const r of this.ranges) if (!r.finished) base = Math.min(base, r.firstNotDone());
    return base;
  }

  /**
   * The first block staging may not take yet because of the inspector: `lead` past the one it is at. An
   * inspector further behind the staging, at blocks the tap cannot give it, is not waited for: at once when
   * a range here staged them before it came (an attempt resumed after a crash), after the grace when no
   * range here covers them (staged on another worker, or by an attempt before a crash). Until then it is, as
   * the range between may be about to register here: a publish's ranges start in any order, and a later
   * range running ahead would fill the tap with blocks the inspector needs last, leaving it to read the
   * source again. Arms the grace's timer, which wakes the lanes waiting when it ends.
   */
  private inspectorBound(base: number): number {
    const at = this.inspector?.next ?? (this.awaiting ? 0 : undefined);
    if (at === undefined || at + this.lead >= base) {
      this.forgetLag();
      return at === undefined ? Infinity : at + this.lead;
    }
    if (!this.held.has(at)) for (const r of this.ranges) if (r.covers(at)) return Infinity;
    if (!this.lag) {
      const lag = {
        graceOver: false,
        timer: setTimeout(() => {
          lag.graceOver = true;
          this.pump();
        }, INSPECT_GRACE_MS).unref(),
      };
      this.lag = lag;
    }
    return this.lag.graceOver ? Infinity : at + this.lead;
  }

  /** A lag of the inspector behind the staging is over, or changed (a range or an inspector came or went). */
  private forgetLag(): void {
    clearTimeout(this.lag?.timer);
    this.lag = undefined;
  }

  // ---- the tap ----

  /**
   * A claimed block, read and digested, offered to the inspector: the tap takes a share of it when an
   * inspector here will want it (or may yet attach, just after the publish started here).
   */
  offer(claim: Claim, block: TapBlock): void {
    claim.range.markOffered(claim.index);
    const wanted = this.inspector ? block.index >= this.inspector.next : this.awaiting;
    if (wanted && !this.held.has(block.index)) {
      this.held.set(block.index, { ...block, held: block.held.share() });
      this.room.heldBytes += block.held.bytes.length;
      // Over the limit, the blocks needed last go first (possibly this one).
      while (this.room.heldBytes > this.room.limitBytes && this.held.size > 0) this.drop(Math.max(...this.held.keys()));
    }
    this.changed();
  }

  private drop(index: number): void {
    const block = this.held.get(index)!;
    this.held.delete(index);
    this.room.heldBytes -= block.held.bytes.length;
    block.held.release();
  }

  /** The grace is over: blocks kept for an inspector that did not come are let go, and staging goes on without it. */
  private graceOver(): void {
    if (!this.awaiting) return;
    this.awaiting = false;
    clearTimeout(this.graceTimer);
    this.onSettled();
    if (this.inspector) return;
    for (const index of [...this.held.keys()]) this.drop(index);
    this.changed();
  }

  /** The inspection of this publish, in this process; a second one replaces the first. */
  attachInspector(): InspectorTap {
    const me = { next: 0, graceSpentAt: -1 };
    this.inspector = me;
    this.forgetLag();
    this.graceOver();
    this.changed();
    const current = () => this.inspector === me;
    return {
      take: (index, signal) => (current() ? this.take(me, index, signal) : Promise.resolve(undefined)),
      expects: (index) => current() && (this.held.has(index) || this.coming(index)),
      passed: (index) => {
        if (current()) this.passed(me, index + 1);
      },
      detach: () => {
        if (!current()) return;
        this.inspector = undefined;
        this.forgetLag();
        for (const index of [...this.held.keys()]) this.drop(index);
        this.changed();
      },
    };
  }

  /** Whether a lane here is still to offer block i. */
  private coming(i: number): boolean {
    for (const r of this.ranges) if (r.covers(i) && r.owes(i)) return true;
    return false;
  }

  /** The inspector is at block `index`: blocks before it are let go, and staging may run on. */
  private passed(me: { next: number }, index: number): void {
    me.next = Math.max(me.next, index);
    for (const i of [...this.held.keys()]) if (i < index) this.drop(i);
    this.pump();
  }

  private async take(
    me: { next: number; graceSpentAt: number },
    index: number,
    signal: AbortSignal,
  ): Promise<TapBlock | undefined> {
    this.passed(me, index);
    const since = Date.now();
    for (;;) {
      signal.throwIfAborted();
      if (this.inspector !== me) return undefined;
      const block = this.held.get(index);
      if (block) {
        this.held.delete(index);
        this.room.heldBytes -= block.held.bytes.length;
        this.passed(me, index + 1);
        return block;
      }
      if (this.coming(index)) {
        await this.nextChange(signal);
        continue;
      }
      // No range here owes the block. If none ever reached past it, its range may still be on its way
      // here (the publish is starting, or the next range is being scheduled): wait a little, once per
      // registration, before reading it.
      const waited = Date.now() - since;
      if (this.highestEnd <= index && me.graceSpentAt !== this.registrations && waited < INSPECT_GRACE_MS) {
        await this.nextChange(signal, INSPECT_GRACE_MS - waited);
        continue;
      }
      if (this.highestEnd <= index) me.graceSpentAt = this.registrations;
      return undefined;
    }
  }

  private nextChange(signal: AbortSignal, timeoutMs?: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const done = () => {
        this.listeners.delete(done);
        signal.removeEventListener('abort', aborted);
        if (timer) clearTimeout(timer);
        resolve();
      };
      const aborted = () => {
        done();
        reject(signal.reason);
      };
      this.listeners.add(done);
      signal.addEventListener('abort', aborted, { once: true });
      if (timeoutMs !== undefined) timer = setTimeout(done, timeoutMs);
    });
  }

  private changed(): void {
    this.pump();
    for (const listener of [...this.listeners]) listener();
    if (this.idle) this.onIdle();
  }
}

export interface InspectorTap {
  /**
   * Block `index` from the tap, waiting while a lane here is still to offer it; undefined when the
   * inspector should read it itself. Taking block i lets go of every block before it.
   */
  take(index: number, signal: AbortSignal): Promise<TapBlock | undefined>;
  /** Whether the tap holds block i or a lane here is still to offer it. */
  expects(index: number): boolean;
  /** The inspector read block `index` itself and is past it. */
  passed(index: number): void;
  detach(): void;
}
