import fs from 'node:fs';
import path from 'node:path';
import { temporal } from '@temporalio/proto';
import { Worker } from '@temporalio/worker';
import { workflowSource } from '../../src/temporal/worker';

/**
 * Workflows already running must keep replaying after a change to workflow code: every kept history
 * (a publish that deploys, a deploy, a failed publish, runs cancelled mid-transfer, a publish and a
 * fanned-out deploy made after transfers got their own queue, and the paths recorded by
 * test/harness/record-path-histories.ts) replays against the code as it is now. A change that breaks one
 * needs `patched()`.
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

  it.each(files)('%s replays without nondeterminism', async (file) => {
    const history = temporal.api.history.v1.History.decode(fs.readFileSync(path.join(dir, file)));
    await expect(Worker.runReplayHistory({ ...workflowSource() }, history, workflowIds[file])).resolves.toBeUndefined();
  });
});
