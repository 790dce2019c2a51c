import { letFinish } from '../../src/engine/signals';

describe('letFinish', () => {
  afterEach(() => jest.useRealTimers());

  it('lets a write under way finish when its activity is cancelled, and answers what it wrote', async () => {
    const cancel = new AbortController();
    let seen: AbortSignal | undefined;
    const written = letFinish(cancel.signal, async (signal) => {
      seen = signal;
      cancel.abort(new Error('cancelled'));
      await new Promise((resolve) => setTimeout(resolve, 20));
      return 'block staged';
    });
    await expect(written).resolves.toBe('block staged');
    expect(seen?.aborted).toBe(false);
  });

  it('aborts the write once the grace is over', async () => {
    jest.useFakeTimers();
    const cancel = new AbortController();
    const reason = new Error('cancelled');
    const written = letFinish(
      cancel.signal,
      (signal) => new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason as Error))),
    );
    cancel.abort(reason);
    jest.advanceTimersByTime(29_000);
    let settled = false;
    void written.catch(() => (settled = true));
    await Promise.resolve();
    expect(settled).toBe(false);
    jest.advanceTimersByTime(1_000);
    await expect(written).rejects.toBe(reason);
  });

  it('starts no write once cancelled', async () => {
    const cancel = new AbortController();
    cancel.abort(new Error('cancelled'));
    const write = jest.fn(async () => 'written');
    await expect(letFinish(cancel.signal, write)).rejects.toThrow('cancelled');
    expect(write).not.toHaveBeenCalled();
  });
});
