import { HeldBytes, INSPECT_GRACE_MS, PublishTap, type Claim } from '../../src/publish/block-tap';
import { TapRegistry } from '../../src/publish/tap-registry';
import { BlockBuffers, isShared } from '../../src/storage/block-buffers';
import type { Reservation } from '../../src/storage/byte-budget';

function reservation(bytes = 8): Reservation & { released: number } {
  const r = { bytes, released: 0, release: () => void r.released++ };
  return r;
}

function block(index: number, size = 8) {
  const res = reservation(size);
  return { index, digest: `d${index}`, held: new HeldBytes(Buffer.alloc(size, index), res, () => undefined), res };
}

const never = new AbortController().signal;
const plan = { blockCount: 64, blockSize: 8 };

/** Each claimed block offered to the tap, as a lane does once it has read it, then its upload over and staged. */
function stageAll(tap: PublishTap, claims: Claim[]): void {
  for (const claim of claims) {
    const b = block(claim.index);
    tap.offer(claim, b);
    b.held.release();
    tap.complete(claim);
  }
}

/** Claims until none is handed out at once. */
async function claimAll(tap: PublishTap, owner: ReturnType<PublishTap['register']>): Promise<Claim[]> {
  const claims: Claim[] = [];
  for (;;) {
    const abort = new AbortController();
    const next = tap.claim(owner, abort.signal);
    const got = await Promise.race([next, new Promise<'none'>((r) => setImmediate(() => r('none')))]);
    if (got === 'none') {
      abort.abort(new Error('stop'));
      await next.catch(() => undefined);
      return claims;
    }
    if (!got) return claims;
    claims.push(got);
  }
}

describe('PublishTap staging', () => {
  it('hands out the lowest blocks first across ranges, at most `slots` at a time', async () => {
    const tap = new PublishTap(64, 3, 1000);
    const a = tap.register({ first: 0, count: 4 }, 0);
    const b = tap.register({ first: 4, count: 4 }, 0);
    const claims = await claimAll(tap, b);
    expect(claims.map((c) => c.index)).toEqual([0, 1, 2]);
    expect(claims.every((c) => c.range === a)).toBe(true);
    tap.complete(claims[0]);
    expect((await tap.claim(b, never))!.index).toBe(3);
  });

  it('takes no block further than the window past the first one not yet staged', async () => {
    const tap = new PublishTap(64, 8, 1000, { window: 4 });
    const r = tap.register({ first: 0, count: 16 }, 0);
    const claims = await claimAll(tap, r);
    expect(claims.map((c) => c.index)).toEqual([0, 1, 2, 3]);
    tap.complete(claims[1]);
    expect(await claimAll(tap, r)).toEqual([]); // block 0 still holds the window
    tap.complete(claims[0]);
    expect((await claimAll(tap, r)).map((c) => c.index)).toEqual([4, 5]);
  });

  it('takes no block further than `lead` past the block the inspector is at', async () => {
    const tap = new PublishTap(64, 8, 1000, { lead: 4 });
    const inspector = tap.attachInspector();
    const r = tap.register({ first: 0, count: 32 }, 0);
    const claims = await claimAll(tap, r);
    expect(claims.map((c) => c.index)).toEqual([0, 1, 2, 3]);
    stageAll(tap, claims);
    // Staged, but the inspector has not taken them: staging waits rather than run on.
    expect(await claimAll(tap, r)).toEqual([]);
    (await inspector.take(0, never))!.held.release();
    expect((await claimAll(tap, r)).map((c) => c.index)).toEqual([4]);
    inspector.detach();
    expect((await claimAll(tap, r)).map((c) => c.index)).toEqual([5, 6, 7, 8, 9, 10, 11]);
  });

  describe('with an inspector more than `lead` behind the staging', () => {
    beforeEach(() => jest.useFakeTimers({ doNotFake: ['setImmediate', 'nextTick'] }));
    afterEach(() => jest.useRealTimers());

    it('does not wait for one re-reading blocks a range here staged before it started', async () => {
      const tap = new PublishTap(64, 8, 1000, { lead: 4 });
      tap.attachInspector();
      const r = tap.register({ first: 0, count: 64 }, 40);
      expect((await claimAll(tap, r)).map((c) => c.index)).toEqual([40, 41, 42, 43, 44, 45, 46, 47]);
    });

    it('waits the grace for blocks no range here covers, then goes on: the waiting lane is woken', async () => {
      const tap = new PublishTap(64, 8, 1000, { lead: 4, window: 64 });
      tap.attachInspector();
      const r = tap.register({ first: 16, count: 16 }, 16);
      const waiting = tap.claim(r, never);
      jest.advanceTimersByTime(INSPECT_GRACE_MS - 1);
      await expect(Promise.race([waiting, new Promise((resolve) => setImmediate(() => resolve('waiting')))])).resolves.toBe(
        'waiting',
      );
      jest.advanceTimersByTime(1);
      expect((await waiting)!.index).toBe(16);
    });

    it('waits while the range between registers: a later range that started first does not run ahead', async () => {
      const tap = new PublishTap(64, 8, 1000, { lead: 4, window: 64 });
      const inspector = tap.attachInspector();
      const later = tap.register({ first: 16, count: 16 }, 16);
      expect(await claimAll(tap, later)).toEqual([]);
      tap.register({ first: 0, count: 16 }, 0);
      const claims = await claimAll(tap, later);
      expect(claims.map((c) => c.index)).toEqual([0, 1, 2, 3]);
      // Once caught up, the inspector holds the staging back the whole way, the grace long over.
      jest.advanceTimersByTime(INSPECT_GRACE_MS);
      stageAll(tap, claims);
      expect(await claimAll(tap, later)).toEqual([]);
      (await inspector.take(0, never))!.held.release();
      expect((await claimAll(tap, later)).map((c) => c.index)).toEqual([4]);
    });

    /** A range from `first` alone, the inspector at block 0: the lag's grace waited out, the first claims staged. */
    async function lagOver(first: number): Promise<{ tap: PublishTap; r: ReturnType<PublishTap['register']> }> {
      const tap = new PublishTap(64, 8, 1000, { lead: 4, window: 64 });
      tap.attachInspector();
      const r = tap.register({ first, count: 16 }, first);
      expect(await claimAll(tap, r)).toEqual([]);
      jest.advanceTimersByTime(INSPECT_GRACE_MS);
      const claims = await claimAll(tap, r);
      expect(claims.map((c) => c.index)).toEqual(Array.from({ length: 8 }, (_, i) => first + i));
      for (const claim of claims) tap.complete(claim);
      return { tap, r };
    }

    it('keeps a lag whose grace is over when a range beyond the staging registers', async () => {
      const { tap, r } = await lagOver(16);
      tap.register({ first: 48, count: 16 }, 48);
      expect((await claimAll(tap, r)).map((c) => c.index)).toEqual([24, 25, 26, 27, 28, 29, 30, 31]);
    });

    it('gives a range that registers after one lag ended a grace of its own', async () => {
      const { tap } = await lagOver(48);
      const later = tap.register({ first: 16, count: 16 }, 16);
      expect(await claimAll(tap, later)).toEqual([]);
    });
  });

  it('resumes a range after its checkpoint and finishes when every block is staged', async () => {
    const tap = new PublishTap(64, 4, 1000);
    const r = tap.register({ first: 8, count: 4 }, 10);
    expect(r.firstNotDone()).toBe(10);
    const claims = await claimAll(tap, r);
    expect(claims.map((c) => c.index)).toEqual([10, 11]);
    tap.complete(claims[1]);
    expect(r.firstNotDone()).toBe(10);
    const last = tap.claim(r, never);
    tap.complete(claims[0]);
    expect(r.finished).toBe(true);
    await expect(last).resolves.toBeUndefined();
  });

  it('gives a block back for another lane when its attempt fails', async () => {
    const tap = new PublishTap(64, 2, 1000);
    const r = tap.register({ first: 0, count: 3 }, 0);
    const [first, second] = await claimAll(tap, r);
    tap.giveBack(first);
    expect((await tap.claim(r, never))!.index).toBe(0);
    tap.complete(second);
    expect((await tap.claim(r, never))!.index).toBe(2);
  });

  it('stops waiting for a claim when the signal aborts', async () => {
    const tap = new PublishTap(64, 1, 1000);
    const r = tap.register({ first: 0, count: 4 }, 0);
    await tap.claim(r, never);
    const abort = new AbortController();
    const waiting = tap.claim(r, abort.signal);
    abort.abort(new Error('cancelled'));
    await expect(waiting).rejects.toThrow('cancelled');
  });
});

describe('PublishTap inspection', () => {
  it('gives the inspector the blocks lanes offer, in order, waiting for those still to come', async () => {
    const tap = new PublishTap(4, 4, 1000);
    const inspector = tap.attachInspector();
    const r = tap.register({ first: 0, count: 4 }, 0);
    const claims = await claimAll(tap, r);
    const one = block(1);
    tap.offer(claims[1], one);
    one.held.release(); // the lane's upload is over
    const first = inspector.take(0, never);
    const zero = block(0);
    tap.offer(claims[0], zero);
    const got = await first;
    expect(got).toMatchObject({ index: 0, digest: 'd0' });
    // The lane still uploads block 0: the inspector's share keeps it.
    got!.held.release();
    expect(zero.res.released).toBe(0);
    zero.held.release();
    expect(zero.res.released).toBe(1);
    const next = await inspector.take(1, never);
    next!.held.release();
    expect(one.res.released).toBe(1);
  });

  it('tells the inspector to read a block itself when no lane here owes it', async () => {
    const tap = new PublishTap(64, 4, 1000);
    const inspector = tap.attachInspector();
    tap.register({ first: 16, count: 16 }, 0); // a later range is here: block 3's went elsewhere
    await expect(inspector.take(3, never)).resolves.toBeUndefined();
    expect(inspector.expects(3)).toBe(false);
    expect(inspector.expects(20)).toBe(true);
  });

  it('waits a little for a range that has not come yet, once per registration', async () => {
    jest.useFakeTimers({ doNotFake: ['setImmediate'] });
    try {
      const tap = new PublishTap(64, 4, 1000);
      const inspector = tap.attachInspector();
      let result: unknown = 'pending';
      const taking = inspector.take(0, never).then((b) => (result = b));
      await jest.advanceTimersByTimeAsync(INSPECT_GRACE_MS - 10);
      expect(result).toBe('pending');
      await jest.advanceTimersByTimeAsync(20);
      await taking;
      expect(result).toBeUndefined();
      // The grace is spent: the next block not owed here is read at once.
      await expect(inspector.take(1, never)).resolves.toBeUndefined();
    } finally {
      jest.useRealTimers();
    }
  });

  it('keeps at most its limit, dropping the blocks needed last', async () => {
    const tap = new PublishTap(64, 8, 16);
    const inspector = tap.attachInspector();
    const r = tap.register({ first: 0, count: 8 }, 0);
    const claims = await claimAll(tap, r);
    const offered = [3, 1, 2].map((i) => {
      const b = block(i);
      tap.offer(claims[i], b);
      b.held.release();
      return b;
    });
    // Blocks 1 and 2 fit in 16 bytes; block 3, needed last, was let go.
    expect(offered.map((b) => b.res.released)).toEqual([1, 0, 0]);
    inspector.detach();
    expect(offered.map((b) => b.res.released)).toEqual([1, 1, 1]);
  });

  it('drops blocks offered before an inspector, if none comes', async () => {
    jest.useFakeTimers({ doNotFake: ['setImmediate'] });
    try {
      const tap = new PublishTap(64, 8, 1000, { awaitInspector: true });
      const r = tap.register({ first: 0, count: 8 }, 0);
      const [claim] = await claimAll(tap, r);
      const b = block(0);
      tap.offer(claim, b);
      b.held.release();
      expect(b.res.released).toBe(0);
      await jest.advanceTimersByTimeAsync(INSPECT_GRACE_MS);
      expect(b.res.released).toBe(1);
    } finally {
      jest.useRealTimers();
    }
  });
});

describe('PublishTap before its inspector', () => {
  it('stages no further than `lead` blocks while it awaits the inspector, and goes on once the grace is over', async () => {
    jest.useFakeTimers({ doNotFake: ['setImmediate'] });
    try {
      const tap = new PublishTap(64, 8, 1000, { awaitInspector: true, lead: 4 });
      const r = tap.register({ first: 0, count: 32 }, 0);
      const claims = await claimAll(tap, r);
      expect(claims.map((c) => c.index)).toEqual([0, 1, 2, 3]);
      for (const claim of claims) tap.complete(claim);
      expect(await claimAll(tap, r)).toEqual([]);
      await jest.advanceTimersByTimeAsync(INSPECT_GRACE_MS);
      expect((await claimAll(tap, r)).map((c) => c.index)).toEqual([4, 5, 6, 7, 8, 9, 10, 11]);
    } finally {
      jest.useRealTimers();
    }
  });

  it('does not await an inspector again for a publish already settled here', async () => {
    jest.useFakeTimers({ doNotFake: ['setImmediate'] });
    try {
      const taps = new TapRegistry(1000);
      const first = taps.tap('run', plan, 2);
      const r = first.register({ first: 0, count: 8 }, 0);
      const claims = await claimAll(first, r);
      expect(claims.map((c) => c.index)).toEqual([0, 1]);
      for (const claim of claims) first.complete(claim);
      expect(await claimAll(first, r)).toEqual([]); // awaiting the inspector
      await jest.advanceTimersByTimeAsync(INSPECT_GRACE_MS);
      first.unregister(r);
      expect(taps.size).toBe(0);
      // The same range again (a retried attempt), on a new tap: no inspector came the first time, none is awaited now.
      const second = taps.tap('run', plan, 2);
      const again = second.register({ first: 0, count: 8 }, 2);
      expect((await claimAll(second, again)).map((c) => c.index)).toEqual([2, 3]);
      // Another publish still awaits its inspector.
      const other = taps.tap('other', plan, 2);
      const o = other.register({ first: 0, count: 8 }, 0);
      const started = await claimAll(other, o);
      expect(started.map((c) => c.index)).toEqual([0, 1]);
      for (const claim of started) other.complete(claim);
      expect(await claimAll(other, o)).toEqual([]);
    } finally {
      jest.useRealTimers();
    }
  });
});

describe('PublishTap waking lanes that wait', () => {
  /** A claim that is not handed out yet; `got` says whether it has been since. */
  function waiting(tap: PublishTap, owner: ReturnType<PublishTap['register']>) {
    const state: { got?: Claim } = {};
    void tap.claim(owner, never).then((claim) => (state.got = claim));
    return state;
  }
  const settle = () => new Promise((resolve) => setImmediate(resolve));

  it('when the inspector moves on', async () => {
    const tap = new PublishTap(64, 8, 1000, { lead: 2 });
    const inspector = tap.attachInspector();
    const r = tap.register({ first: 0, count: 16 }, 0);
    const claims = await claimAll(tap, r);
    expect(claims.map((c) => c.index)).toEqual([0, 1]);
    const lane = waiting(tap, r);
    const b = block(0);
    tap.offer(claims[0], b);
    await settle();
    expect(lane.got).toBeUndefined();
    (await inspector.take(0, never))!.held.release();
    await settle();
    expect(lane.got?.index).toBe(2);
    // Past a block it read itself, too.
    const next = waiting(tap, r);
    inspector.passed(1);
    await settle();
    expect(next.got?.index).toBe(3);
  });

  it('when the awaited inspector attaches, or the grace ends without one', async () => {
    jest.useFakeTimers({ doNotFake: ['setImmediate'] });
    try {
      for (const comes of [true, false]) {
        const tap = new PublishTap(64, 8, 1000, { awaitInspector: true, lead: 1 });
        const r = tap.register({ first: 0, count: 16 }, 0);
        const [first] = await claimAll(tap, r);
        tap.complete(first);
        const lane = waiting(tap, r);
        await settle();
        expect(lane.got).toBeUndefined();
        if (comes) tap.attachInspector().passed(0);
        else await jest.advanceTimersByTimeAsync(INSPECT_GRACE_MS);
        await settle();
        expect(lane.got?.index).toBe(1);
      }
    } finally {
      jest.useRealTimers();
    }
  });
});

describe('TapRegistry', () => {
  it('lets staging lead the inspector by no more blocks than the tap holds', async () => {
    const taps = new TapRegistry(4 * plan.blockSize);
    const tap = taps.tap('run', plan, 8);
    tap.attachInspector();
    const r = tap.register({ first: 0, count: 64 }, 0);
    expect((await claimAll(tap, r)).map((c) => c.index)).toEqual([0, 1, 2, 3]);
  });

  it('holds blocks of all its publishes within one limit', async () => {
    const taps = new TapRegistry(3 * plan.blockSize);
    const offered = [];
    for (const key of ['a', 'b']) {
      const tap = taps.tap(key, plan, 8);
      tap.attachInspector();
      const r = tap.register({ first: 0, count: 64 }, 0);
      for (const claim of (await claimAll(tap, r)).slice(0, 2)) {
        const b = block(claim.index);
        tap.offer(claim, b);
        b.held.release();
        offered.push(b);
      }
    }
    // Two blocks of publish a fit; of b's, only the one a third block's room allows.
    expect(offered.map((b) => b.res.released)).toEqual([0, 0, 0, 1]);
  });

  it('does not hold back the staging of blocks larger than the taps can hold', async () => {
    const taps = new TapRegistry(plan.blockSize - 1);
    const tap = taps.tap('big', plan, 8);
    tap.attachInspector();
    const r = tap.register({ first: 0, count: 64 }, 0);
    expect(await claimAll(tap, r)).toHaveLength(8);
  });
});

describe('HeldBytes', () => {
  it('lets the bytes go and gives the budget back when its last holder lets go', () => {
    const res = reservation(1 << 20);
    const pool = new BlockBuffers(() => 4 << 20);
    const held = new HeldBytes(pool.take(1 << 20), res, (b) => pool.give(b)).share();
    held.release();
    expect(pool.idle).toBe(0);
    held.release();
    expect(res.released).toBe(1);
    expect(pool.idle).toBe(1);
  });

  it('never hands on bytes a failed request may still read', () => {
    const res = reservation(1 << 20);
    const pool = new BlockBuffers(() => 4 << 20);
    const held = new HeldBytes(pool.take(1 << 20), res, (b) => pool.give(b));
    held.pin();
    held.release();
    expect(res.released).toBe(1);
    expect(pool.idle).toBe(0);
  });
});

describe('BlockBuffers', () => {
  it('hands out shared buffers of the size asked, again once given back, and lets idle ones go', () => {
    jest.useFakeTimers();
    try {
      const pool = new BlockBuffers(() => 1000, 1000);
      const a = pool.take(64);
      expect(a.length).toBe(64);
      expect(isShared(a)).toBe(true);
      pool.give(a);
      expect(pool.take(32)).not.toBe(a);
      expect(pool.take(64)).toBe(a);
      pool.give(a);
      jest.advanceTimersByTime(1000);
      expect(pool.idle).toBe(0);
      expect(pool.take(64)).not.toBe(a);
    } finally {
      jest.useRealTimers();
    }
  });

  it('keeps at most its limit idle, letting the size given back longest ago go first', () => {
    let room = 256;
    const pool = new BlockBuffers(() => room);
    const last = pool.take(40); // an image's last, odd-sized block
    const blocks = [pool.take(64), pool.take(64), pool.take(64), pool.take(64)];
    pool.give(last);
    for (const b of blocks) pool.give(b);
    // 40 + 4 × 64 is over 256: the odd one went, every block-sized one stays.
    expect(pool.idle).toBe(4);
    expect(pool.take(40)).not.toBe(last);
    expect(blocks).toContain(pool.take(64));
    pool.give(pool.take(300));
    expect(pool.idle).toBe(3);
    // Blocks in flight take room: idle ones go, oldest size first, until the rest fit.
    room = 128;
    pool.give(pool.take(40));
    expect(pool.idle).toBe(2);
    expect(pool.take(40)).not.toBe(undefined);
    expect(pool.idle).toBe(1);
  });
});
