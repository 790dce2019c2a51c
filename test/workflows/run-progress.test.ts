import { randomUUID } from 'node:crypto';
import { Context } from '@temporalio/activity';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { DownloadInput } from '../../src/activities/agent';
import type { DeployResultRow } from '../../src/shared/deploy-input';
import { readProgress, type DeployReading } from '../../src/cli/run-progress';
import { deployActivities, deployedDownload, plan, runWorker, startTestEnvironment } from '../harness/mock-activities';

/** readProgress on a fanned-out deploy: its batch's rows, moved on by the agents' download heartbeats. */
let env: TestWorkflowEnvironment;
beforeAll(async () => {
  env = await startTestEnvironment();
}, 120_000);
afterAll(() => env?.teardown());

describe('readProgress of a deploy', () => {
  it("shows each SDDC's downloaded bytes from its agent's heartbeats while the batch runs", async () => {
    const rows: DeployResultRow[] = [];
    const agentQueue = `sddc-${randomUUID()}`;
    const workflowId = randomUUID();
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    // Each SDDC's agent has fetched a different share when it stops to wait.
    const share: Record<string, number> = { 'east-1': 0.25, 'east-2': 0.5 };
    const downloadImage = async (input: DownloadInput) => {
      const ctx = Context.current();
      const bytesDone = Math.floor(plan.sizeBytes * share[input.sddc]);
      let waiting = true;
      void released.then(() => (waiting = false));
      while (waiting) {
        ctx.heartbeat({
          sddc: input.sddc,
          phase: 'downloading',
          location: 'east-primary',
          bytesDone,
          bytesTotal: plan.sizeBytes,
        });
        await ctx.sleep(50);
      }
      return deployedDownload();
    };

    const [during, after] = await runWorker(
      env,
      deployActivities(rows, agentQueue, ['east-1', 'east-2', 'tiny'], 1),
      async (taskQueue) => {
        const handle = await env.client.workflow.start('DeployToSDDCs', {
          args: [{ image: 'app', version: '1.0.0', sddcs: ['east-1', 'east-2', 'tiny'] }],
          taskQueue,
          workflowId,
        });
        let seen: DeployReading | undefined;
        for (;;) {
          const reading = await readProgress(env.client, workflowId);
          const moving = reading.kind === 'deploy' ? reading.sddcs.filter((s) => s.bytesDone > 0) : [];
          if (moving.length === 2) {
            seen = reading as DeployReading;
            break;
          }
          await new Promise((r) => setTimeout(r, 50));
        }
        release();
        await handle.result();
        return [seen, await readProgress(env.client, workflowId)] as const;
      },
      { taskQueue: agentQueue, activities: { downloadImage } },
    );

    expect(during).toMatchObject({ kind: 'deploy', status: 'running', sddcsTotal: 3, counts: {} });
    const byName = Object.fromEntries(during.sddcs.map((s) => [s.sddc, s]));
    expect(byName['east-1']).toMatchObject({ phase: 'downloading', bytesDone: plan.sizeBytes / 4, bytesTotal: plan.sizeBytes });
    expect(byName['east-2']).toMatchObject({ phase: 'downloading', bytesDone: plan.sizeBytes / 2, bytesTotal: plan.sizeBytes });
    expect(byName.tiny).toMatchObject({ phase: 'done', status: 'skipped' });
    expect(
      during.transfers
        .filter((t) => t.kind === 'downloading')
        .map((t) => t.sddc)
        .sort(),
    ).toEqual(['east-1', 'east-2']);

    expect(after).toMatchObject({ kind: 'deploy', status: 'completed', counts: { deployed: 2, skipped: 1 }, transfers: [] });
    expect(after.kind === 'deploy' && after.sddcs.map((s) => s.status).sort()).toEqual(['deployed', 'deployed', 'skipped']);
  });
});
