import { ByteBudget, type Reservation } from '../../src/storage/byte-budget';

const settled = () => new Promise((r) => setImmediate(r));

describe('ByteBudget', () => {
  it('admits what fits at once and makes the rest wait, first come first served', async () => {
    const budget = new ByteBudget(10);
    const a = await budget.acquire(6);
    const served: string[] = [];
    const b = budget.acquire(6).then((r) => (served.push('b'), r));
    const c = budget.acquire(1).then((r) => (served.push('c'), r));
    await settled();
    // c would fit, but b came first: nothing overtakes a waiter.
    expect(served).toEqual([]);
    expect(budget.waiting).toBe(2);
    a.release();
    await settled();
    expect(served).toEqual(['b', 'c']);
    expect(budget.heldBytes).toBe(7);
    (await b).release();
    (await c).release();
    expect(budget.heldBytes).toBe(0);
  });

  it('admits a request larger than the whole budget alone, once nothing else is held', async () => {
    const budget = new ByteBudget(10);
    const small = await budget.acquire(3);
    let big: Reservation | undefined;
    const waiting = budget.acquire(50).then((r) => (big = r));
    await settled();
    expect(big).toBeUndefined();
    small.release();
    await waiting;
    expect(big!.bytes).toBe(10);
    expect(budget.heldBytes).toBe(10);
    big!.release();
    expect(budget.heldBytes).toBe(0);
  });

  it('gives up a wait when its signal aborts, and lets the next waiter through', async () => {
    const budget = new ByteBudget(4);
    const held = await budget.acquire(4);
    const abort = new AbortController();
    const cancelled = budget.acquire(4, abort.signal);
    const next = budget.acquire(4);
    abort.abort(new Error('cancelled'));
    await expect(cancelled).rejects.toThrow('cancelled');
    expect(budget.waiting).toBe(1);
    held.release();
    expect((await next).bytes).toBe(4);
  });

  it('refuses to start for a signal already aborted', async () => {
    const abort = new AbortController();
    abort.abort(new Error('gone'));
    await expect(new ByteBudget(4).acquire(1, abort.signal)).rejects.toThrow('gone');
  });

  it('counts a second release of the same reservation once', async () => {
    const budget = new ByteBudget(8);
    const r = await budget.acquire(5);
    r.release();
    r.release();
    expect(budget.heldBytes).toBe(0);
    expect((await budget.acquire(8)).bytes).toBe(8);
  });
});
