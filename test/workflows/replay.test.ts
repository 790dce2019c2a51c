import fs from 'node:fs';
import path from 'node:path';
import { temporal } from '@temporalio/proto';
import { Worker } from '@temporalio/worker';
import { workflowSource } from '../../src/temporal/worker';
import { patchesIn, V2_PATCHES } from '../harness/history-patches';

/**
 * Workflows already running must keep replaying after a change to workflow code: every kept history
 * (a publish that deploys, a deploy, a failed publish, runs cancelled mid-transfer, a publish and a
 * fanned-out deploy made after transfers got their own queue, the paths recorded by
 * test/harness/record-path-histories.ts, and the `-v2` runs of the newest patches) replays against the code
 * as it is now. A change that breaks one needs `patched()`.
 */
const dir = path.join(__dirname, '..', 'histories');
const files = fs.readdirSync(dir).filter((f) => f.endsWith('.binpb'));
const workflowIds = JSON.parse(fs.readFileSync(path.join(dir, 'workflow-ids.json'), 'utf8')) as Record<string, string>;

describe('recorded histories replay', () => {
  it('keeps a publish, a deploy, a failed publish, a cancelled publish and deploy, and a fanned-out deploy', () => {
    expect(files).toEqual(
      expect.arrayContaining([
        'publish-with-deploy.binpb',
        'deploy.binpb',
        'publish-failed.binpb',
        'publish-cancelled.binpb',
        'deploy-cancelled.binpb',
        'publish-transfer-queue.binpb',
        'deploy-fanned-out.binpb',
        'deploy-batch.binpb',
      ]),
    );
  });

  it('keeps the lifecycle runs and the paths recorded later: many ranges, replicas, a re-stage, a republish, a library', () => {
    expect(files).toEqual(
      expect.arrayContaining([
        'retire.binpb',
        'retire-incomplete.binpb',
        'verify-continued.binpb',
        'publish-multi-range.binpb',
        'publish-restage.binpb',
        'publish-republish.binpb',
        'deploy-content-library.binpb',
        'deploy-content-library-batch.binpb',
        'apply-retention.binpb',
        'check-services.binpb',
        'verify-recopied.binpb',
      ]),
    );
  });

  it('keeps the runs of the newest patches: run owner, cancel by scope, transfer-worker check, backstops, lease, batched retire, retention pool, no-agent skips, all or nothing, settled replicas, batch agent checks, hashed replicas', () => {
    expect(files).toEqual(
      expect.arrayContaining([
        'publish-with-deploy-v2.binpb',
        'publish-cancelled-v2.binpb',
        'publish-cancelled-replicating-v2.binpb',
        'publish-no-transfer-worker-v2.binpb',
        'deploy-fanned-out-v2.binpb',
        'deploy-batch-v2.binpb',
        'deploy-cancelled-v2.binpb',
        'deploy-cancelled-batch-v2.binpb',
        'deploy-no-agent-batch-v2.binpb',
        'deploy-all-or-nothing-v2.binpb',
        'deploy-batch-check-v2.binpb',
        'retire-fleet-v2.binpb',
        'retire-fleet-batch-v2.binpb',
        'retire-batch-check-v2.binpb',
        'retire-cancelled-v2.binpb',
        'retire-cancelled-batch-v2.binpb',
        'apply-retention-v2.binpb',
        'verify-recopied-v2.binpb',
        'verify-hashed-v2.binpb',
      ]),
    );
  });

  // A recording that lost a patch's marker no longer replays the code behind it, and would pass whatever that code became.
  it.each(Object.entries(V2_PATCHES))('%s took the patches of the path it guards', (file, patches) => {
    const history = temporal.api.history.v1.History.decode(fs.readFileSync(path.join(dir, file)));
    expect(patchesIn(history)).toEqual(expect.arrayContaining(patches));
  });

  it.each(files)('%s replays without nondeterminism', async (file) => {
    const history = temporal.api.history.v1.History.decode(fs.readFileSync(path.join(dir, file)));
    await expect(Worker.runReplayHistory({ ...workflowSource() }, history, workflowIds[file])).resolves.toBeUndefined();
  });
});
