import type { WorkflowHandle } from '@temporalio/client';
import { followPublish } from '../../src/cli/progress';
import type { CliIo } from '../../src/cli/output';

describe('Ctrl-C while following a run', () => {
  it('stops following with a typed Interrupted failure that says the run goes on and how to re-attach', async () => {
    let resolveResult: (v: unknown) => void = () => {};
    const handle = {
      workflowId: 'publish:app:1.0.0',
      result: () => new Promise((resolve) => (resolveResult = resolve)),
    } as unknown as WorkflowHandle;
    const io: CliIo = { out: () => {}, err: () => {}, progress: process.stderr, tty: false };
    const before = process.listenerCount('SIGINT');
    const following = followPublish(handle, io);
    expect(process.listenerCount('SIGINT')).toBe(before + 1);
    process.emit('SIGINT');
    await expect(following).rejects.toMatchObject({
      type: 'Interrupted',
      message: expect.stringContaining('continues. Re-attach with `vmhub wait publish:app:1.0.0`'),
    });
    expect(process.listenerCount('SIGINT')).toBe(before);
    resolveResult(undefined);
  });
});
