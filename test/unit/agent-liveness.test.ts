import { AGENT_ALIVE_MS, agentPollers, QUICK_ALIVE_MS, withoutAgent } from '../../src/deploy/agent-liveness';
import { agentQuickTaskQueueOf } from '../../src/shared/task-queues';

/** A Temporal whose queues were last polled this long ago (ms), by one poller each. */
function polledAgo(ago: Record<string, number>) {
  return {
    pollersWithin: async (queue: string, _kind: 'activity' | 'workflow', windowsMs: readonly number[]) =>
      windowsMs.map((withinMs) => (ago[queue] !== undefined && ago[queue] <= withinMs ? 1 : 0)),
  };
}

describe('agent liveness', () => {
  const q = 'sddc-east-1';
  const quick = agentQuickTaskQueueOf(q);

  it('an agent polling its quick queue is alive while its long queue is busy', async () => {
    expect(await agentPollers(polledAgo({ [q]: 200_000, [quick]: 20_000 }), q)).toEqual({ long: 1, quick: 1 });
  });

  it('an agent of an older build, with no quick queue, is alive on its long queue for five minutes', async () => {
    expect(await agentPollers(polledAgo({ [q]: AGENT_ALIVE_MS - 1_000 }), q)).toEqual({ long: 1, quick: 0 });
  });

  it('an agent seen on its quick queue that has not polled it lately has stopped, whatever its long queue last did', async () => {
    const stopped = polledAgo({ [q]: 100_000, [quick]: QUICK_ALIVE_MS + 10_000 });
    expect(await agentPollers(stopped, q)).toEqual({ long: 0, quick: 0 });
    expect(await withoutAgent(stopped, [{ name: 'east-1', taskQueue: q }])).toEqual([{ name: 'east-1', taskQueue: q }]);
  });

  it('a narrower window is the caller’s own', async () => {
    expect(await agentPollers(polledAgo({ [q]: 5_000, [quick]: 5_000 }), q, 10_000)).toEqual({ long: 1, quick: 1 });
    expect(await agentPollers(polledAgo({ [q]: 5_000, [quick]: 20_000 }), q, 10_000)).toEqual({ long: 1, quick: 0 });
  });
});
