import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import type { HistoryAndWorkflowId } from '@temporalio/common';
import { loadConfig } from '../../src/config';
import type { CliDeps } from '../../src/cli/deps';
import { main } from '../../src/cli/program';
import * as replayCheck from '../../src/cli/replay-check';
import type { CliIo } from '../../src/cli/output';

interface FakeRun {
  workflowId: string;
  runId: string;
  type: string;
}

/** A Temporal client that lists `open` for a query on running runs and `closed` otherwise, and serves their histories. */
function fakeClient(open: FakeRun[], closed: FakeRun[]) {
  const queries: string[] = [];
  const fetched: string[] = [];
  const client = {
    workflow: {
      list: ({ query }: { query: string }) => {
        queries.push(query);
        const runs = query.includes(`ExecutionStatus = 'Running'`) ? open : closed;
        return (async function* () {
          yield* runs;
        })();
      },
      getHandle: (workflowId: string, runId: string) => ({
        fetchHistory: async () => {
          fetched.push(`${workflowId}/${runId}`);
          return { events: [] };
        },
      }),
    },
  } as unknown as Client;
  return { client, queries, fetched };
}

function deps(client: Client): CliDeps {
  return {
    config: { ...loadConfig(), taskQueue: 'vm-images' },
    temporal: async () => client,
    catalog: async () => {
      throw new Error('the catalog must not be reached');
    },
  };
}

/** A replayer that fails the runs named, with an error worded as the SDK words a nondeterminism. */
function replayer(failing: string[], seen: string[]): replayCheck.Replayer {
  return async function* (_code, histories) {
    for await (const { workflowId } of histories as AsyncIterable<HistoryAndWorkflowId>) {
      seen.push(workflowId);
      const error = failing.includes(workflowId)
        ? new Error(
            'Replay failed with a nondeterminism error. This means that the workflow code as written is not compatible with the history that was fed in. Details: Workflow activation completion failed: [TMPRL1100] Nondeterminism error: Timer machine does not handle this event',
          )
        : undefined;
      yield { workflowId, runId: `${workflowId}-run`, error };
    }
  };
}

const run = (workflowId: string, type = 'PublishImage'): FakeRun => ({ workflowId, runId: `${workflowId}-run`, type });
// Only its presence is checked: the replayer here is a fake.
const bundle = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'vmhub-replay-check-')), 'workflow-bundle.js');
fs.writeFileSync(bundle, '');
const options = { bundle, closedWithinHours: 24, closedLimit: 2 };

describe('the workflow types replay-check lists', () => {
  it('are every workflow the bundle exports', () => {
    const entry = fs.readFileSync(path.join(__dirname, '..', '..', 'src', 'workflows', 'index.ts'), 'utf8');
    const exported = [...entry.matchAll(/export \{([^}]+)\}/g)].flatMap((m) => m[1].split(',').map((n) => n.trim()));
    expect([...replayCheck.WORKFLOW_TYPES].sort()).toEqual(exported.sort());
  });
});

describe('replay-check', () => {
  it('asks for the open and recently closed vmhub runs on the control queue only', () => {
    expect(replayCheck.replayQuery('vm-images')).toBe(
      `TaskQueue = 'vm-images' AND WorkflowType IN ('PublishImage', 'DeployToSDDCs', 'DeploySddcBatch', 'RetireImage', 'RetireSddcBatch', 'ApplyRetention', 'VerifyReplicas', 'VerifySddcs', 'CheckServices', 'Rollout') AND ExecutionStatus = 'Running'`,
    );
    expect(replayCheck.replayQuery('vm-images', new Date('2026-01-02T03:04:05Z'))).toMatch(
      / AND ExecutionStatus != 'Running' AND CloseTime > '2026-01-02T03:04:05.000Z'$/,
    );
    expect(() => replayCheck.replayQuery(`q' OR 1=1`)).toThrow(/quote/);
  });

  it('replays every open run and the newest closed ones, and names each run the new code cannot replay', async () => {
    const { client, fetched } = fakeClient(
      [run('publish:a:1.0.0:x'), run('deploy:a:1.0.0:y', 'DeployToSDDCs')],
      [run('publish:b:1.0.0:x'), run('publish:c:1.0.0:x'), run('publish:d:1.0.0:x')],
    );
    const seen: string[] = [];
    const result = await replayCheck.run(options, deps(client), replayer(['deploy:a:1.0.0:y'], seen));
    expect(seen).toEqual(['publish:a:1.0.0:x', 'deploy:a:1.0.0:y', 'publish:b:1.0.0:x', 'publish:c:1.0.0:x']);
    expect(fetched).toHaveLength(4);
    expect(result).toEqual({
      workflowCode: bundle,
      taskQueue: 'vm-images',
      open: 2,
      closed: 2,
      closedLimitReached: true,
      failures: [
        {
          workflowId: 'deploy:a:1.0.0:y',
          runId: 'deploy:a:1.0.0:y-run',
          type: 'DeployToSDDCs',
          open: true,
          reason: '[TMPRL1100] Nondeterminism error: Timer machine does not handle this event',
        },
      ],
    });
    const text = replayCheck.renderText(result, 24).join('\n');
    expect(text).toContain('2 open and 2 closed in the last 24 h (the newest; more closed in that time)');
    expect(text).toMatch(/deploy:a:1\.0\.0:y\s+DeployToSDDCs\s+open\s+\[TMPRL1100\]/);
    expect(text).toContain('patched()');
  });

  it('says so when every run replays', async () => {
    const { client } = fakeClient([run('publish:a:1.0.0:x')], []);
    const result = await replayCheck.run(options, deps(client), replayer([], []));
    expect(result.failures).toEqual([]);
    expect(replayCheck.renderText(result, 24).at(-1)).toMatch(/every run replays/);
  });

  it('refuses a bundle that is not there before reaching Temporal', async () => {
    const { client, queries } = fakeClient([], []);
    await expect(
      replayCheck.run({ ...options, bundle: '/no/such/workflow-bundle.js' }, deps(client), replayer([], [])),
    ).rejects.toMatchObject({ type: 'InvalidInput', message: expect.stringContaining('npm run build:bundle') });
    expect(queries).toEqual([]);
  });

  it('shortens a long reason', () => {
    const reason = replayCheck.replayReason(new Error(`Nondeterminism error: ${'x'.repeat(1000)}`));
    expect(reason).toHaveLength(300);
    expect(reason.endsWith('...')).toBe(true);
  });

  it('refuses a --closed-within that is not a whole number before reaching Temporal', async () => {
    let out = '';
    const io: CliIo = { out: (t) => void (out += t), err: () => undefined, progress: process.stderr, tty: false };
    const exitCode = process.exitCode;
    try {
      await main(['node', 'vmhub', 'replay-check', '--closed-within', 'soon', '--json'], io);
      expect(JSON.parse(out)).toEqual({ error: { type: 'InvalidInput', message: expect.stringContaining('--closed-within') } });
      expect(process.exitCode).toBe(1);
    } finally {
      process.exitCode = exitCode;
    }
  });
});
