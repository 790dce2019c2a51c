import { randomUUID } from 'node:crypto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { DeployResultRow } from '../../src/shared/deploy-input';
import {
  deployActivities,
  deployedDownload,
  publishActivities,
  runWorker,
  startTestEnvironment,
} from '../harness/mock-activities';

/** What the Web UI shows of a run once it has ended: its current details, and each activity's summary. */
let env: TestWorkflowEnvironment;
beforeAll(async () => {
  env = await startTestEnvironment();
}, 120_000);
afterAll(() => env?.teardown());

async function currentDetails(workflowId: string): Promise<string> {
  const metadata = await env.client.workflow
    .getHandle(workflowId)
    .query<{ currentDetails?: string }>('__temporal_workflow_metadata');
  return metadata.currentDetails ?? '';
}

/** The summaries the run's activities were scheduled with, by activity type. */
async function summaries(workflowId: string): Promise<Array<[string, string]>> {
  const converter = env.client.options.loadedDataConverter.payloadConverter;
  const history = await env.client.workflow.getHandle(workflowId).fetchHistory();
  return (history.events ?? []).flatMap((e) => {
    const scheduled = e.activityTaskScheduledEventAttributes;
    if (!scheduled) return [];
    const payload = e.userMetadata?.summary;
    return [[scheduled.activityType?.name ?? '', payload ? converter.fromPayload<string>(payload) : '']];
  });
}

describe('current details and activity summaries', () => {
  it('a publish ends showing what it published and where it replicated, every activity summarised', async () => {
    const workflowId = randomUUID();
    const activities = publishActivities([], { replicaLocations: async () => ({ replicas: ['west-replica'] }) });
    const [details, summarised] = await runWorker(
      env,
      { ...activities, replicateImage: async () => ({ location: 'west-replica', status: 'verified' as const }) },
      async (taskQueue) => {
        await env.client.workflow.execute('PublishImage', {
          args: [{ source: 'app.ova', image: 'app', version: '1.0.0' }],
          taskQueue,
          workflowId,
        });
        return [await currentDetails(workflowId), await summaries(workflowId)] as const;
      },
    );
    expect(details).toBe(
      '**Publish app 1.0.0 (64.0 MiB OVA) from repository**\n\npublished app@1.0.0\n\nreplicated to west-replica',
    );
    expect(summarised.length).toBeGreaterThan(5);
    for (const [type, summary] of summarised) expect([type, summary]).toEqual([type, expect.stringMatching(/\S/)]);
    expect(summarised).toEqual(
      expect.arrayContaining([
        ['claimVersion', 'claim app@1.0.0'],
        ['markAvailable', 'mark app@1.0.0 available'],
        ['replicateImage', 'replicate app@1.0.0 to west-replica'],
        ['stageBlockRange', 'stage blocks 0–15 of app/1.0.0/app-1.0.0.ova to east-primary'],
      ]),
    );
  });

  it("a deploy's batch shows each SDDC's outcome, and each record names its SDDC", async () => {
    const rows: DeployResultRow[] = [];
    const agentQueue = `sddc-${randomUUID()}`;
    const workflowId = randomUUID();
    const [parent, batch, recorded] = await runWorker(
      env,
      deployActivities(rows, agentQueue, ['east-1', 'east-2', 'tiny'], 1),
      async (taskQueue) => {
        await env.client.workflow
          .execute('DeployToSDDCs', {
            args: [{ image: 'app', version: '1.0.0', sddcs: ['east-1', 'east-2', 'tiny'] }],
            taskQueue,
            workflowId,
          })
          .catch(() => undefined);
        const batchId = `${workflowId}:1-dc-east`;
        return [await currentDetails(workflowId), await currentDetails(batchId), await summaries(batchId)] as const;
      },
      {
        taskQueue: agentQueue,
        activities: {
          downloadImage: async (input) => {
            if (input.sddc === 'east-2') throw Object.assign(new Error('disk full'), { name: 'NoSpace' });
            return deployedDownload();
          },
        },
      },
    );
    expect(parent).toContain('deployed: 3 of 3 done, east-2 failed, 1 skipped');
    expect(batch).toContain('deployed: 3 of 3 done, east-2 failed, 1 skipped');
    expect(batch).toContain('| east-1 | deployed | east-primary |');
    expect(batch).toMatch(/\| tiny \| skipped: does not fit: needs 4 CPUs, has 2 \| - \|/);
    expect(
      recorded
        .filter(([type]) => type === 'recordDeployment')
        .map(([, s]) => s)
        .sort(),
    ).toEqual([
      'record app@1.0.0 on east-1: deployed',
      'record app@1.0.0 on east-2: failed',
      'record app@1.0.0 on tiny: skipped',
    ]);
  });
});
