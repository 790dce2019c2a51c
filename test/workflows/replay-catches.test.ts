import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { temporal } from '@temporalio/proto';
import { bundleWorkflowCode, Worker } from '@temporalio/worker';
import { DeterminismViolationError } from '@temporalio/workflow';
import { bundlerLogger } from '../../scripts/build-bundle';
import type { ProbeResult } from '../../src/activities/publish';
import { MAX_RANGES, planRanges, type BlockPlan } from '../../src/shared/block-plan';

/**
 * The recorded histories catch a change that alters the commands a workflow issues. The publish's ranges
 * are planned in the workflow (`planRanges` in src/shared/block-plan.ts, bounded by MAX_RANGES), from the
 * block plan the probe activity returned: halving MAX_RANGES makes a large image's publish schedule half as
 * many staging activities, so where the recording schedules its 129th range the changed code schedules
 * nothing. (Replay compares the commands and their activity types, not their inputs: a change that kept
 * the number of ranges would go unnoticed.) The recorded 1 TiB publish must fail to replay against a
 * bundle built with that change.
 */
const dir = path.join(__dirname, '..', 'histories');
const workflowIds = JSON.parse(fs.readFileSync(path.join(dir, 'workflow-ids.json'), 'utf8')) as Record<string, string>;
const blockPlanSource = path.resolve(__dirname, '..', '..', 'src', 'shared', 'block-plan.ts');

const history = temporal.api.history.v1.History.decode(fs.readFileSync(path.join(dir, 'publish-multi-range.binpb')));
const scheduledIds = (type: string) =>
  history.events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === type).map((e) => Number(e.eventId));
const scheduled = (type: string) => scheduledIds(type).length;

/** The block plan the recorded probe returned. */
function recordedPlan(): BlockPlan {
  const [probe] = scheduledIds('probeSource');
  const done = history.events.find((e) => Number(e.activityTaskCompletedEventAttributes?.scheduledEventId) === probe);
  const data = done?.activityTaskCompletedEventAttributes?.result?.payloads?.[0]?.data;
  return (JSON.parse(Buffer.from(data ?? []).toString('utf8')) as ProbeResult).plan;
}

/** The workflow code with block-plan.ts replaced by a copy whose MAX_RANGES is `maxRanges`. */
async function bundleWithMaxRanges(maxRanges: number): Promise<string> {
  const source = fs.readFileSync(blockPlanSource, 'utf8');
  const declaration = /export const MAX_RANGES = \d+;/;
  if (!declaration.test(source)) throw new Error('block-plan.ts no longer declares `export const MAX_RANGES = <n>;`');
  const changed = source.replace(declaration, `export const MAX_RANGES = ${maxRanges};`);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vmhub-block-plan-'));
  const copy = path.join(tmp, 'block-plan.ts');
  fs.writeFileSync(copy, changed);
  try {
    return await bundle(copy);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

async function bundle(blockPlan: string): Promise<string> {
  const { code } = await bundleWorkflowCode({
    workflowsPath: require.resolve('../../src/workflows'),
    // Every import of src/shared/block-plan resolves to blockPlan (webpack matches an absolute alias on the resolved path).
    webpackConfigHook: (config) => ({
      ...config,
      resolve: { ...config.resolve, alias: { ...config.resolve?.alias, [blockPlanSource.replace(/\.ts$/, '')]: blockPlan } },
    }),
    logger: bundlerLogger({ silent: true }),
  });
  return code;
}

describe('the recorded histories catch a change of the publish plan', () => {
  it('the recorded publish has more ranges than half of MAX_RANGES allows, and two replicas', () => {
    expect(MAX_RANGES).toBe(256);
    expect(scheduled('stageBlockRange')).toBeGreaterThan(MAX_RANGES / 2);
    const plan = recordedPlan();
    expect(plan.sizeBytes).toBe(1024 ** 4);
    expect(scheduled('stageBlockRange')).toBe(planRanges(plan.blockCount).length);
    expect(scheduled('replicateImage')).toBe(2);
  });

  it('replaying it against workflow code with MAX_RANGES = 128 fails with a DeterminismViolationError', async () => {
    const code = await bundleWithMaxRanges(128);
    const replay = Worker.runReplayHistory({ workflowBundle: { code } }, history, workflowIds['publish-multi-range.binpb']);
    const failure: unknown = await replay.then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(DeterminismViolationError).toBeDefined();
    expect(failure).toBeInstanceOf(DeterminismViolationError);
    expect((failure as Error).message).toMatch(/nondeterminism/i);
  });

  it('the same bundling with MAX_RANGES unchanged replays it: the failure is the change, not the bundling', async () => {
    const code = await bundleWithMaxRanges(MAX_RANGES);
    const replay = Worker.runReplayHistory({ workflowBundle: { code } }, history, workflowIds['publish-multi-range.binpb']);
    await expect(replay).resolves.toBeUndefined();
  });
});
