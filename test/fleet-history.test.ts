import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import { Worker } from '@temporalio/worker';
import type { DeployResult, FleetProgress } from '../src/shared/deploy-input';
import { temporal } from '@temporalio/proto';
import { BATCH_SIZE } from '../src/shared/batches';
import { ROWS_KEPT } from '../src/workflows/deploy-rows';
import { connectWorker } from '../src/temporal/connection';
import { accountingAgent, FLEET_IMAGE, registerFleet } from './harness/simulated-fleet';
import { startWorld, workflowFailure, type TestWorld } from './helpers';

const SDDCS = 1000;
const KiB = 1024;
// 3,000 activities and 1,000 catalog writes: minutes on a shared two-core machine.
const FLEET_TIMEOUT_MS = 15 * 60_000;

/**
 * A deploy to 1,000 registered SDDCs in two data centers during a fleet-wide outage: the real
 * DeployToSDDCs and its batches, the real planning and recording against the catalog, agents that only
 * account and refuse every SDDC. Every history stays far under Temporal's limits, the parent's result
 * and failure stay small, and the catalog holds every SDDC's row.
 */
describe('DeployToSDDCs at fleet scale', () => {
  let world: TestWorld;
  beforeAll(async () => {
    world = await startWorld();
  });
  afterAll(() => world.close());

  it(
    'fails 1,000 SDDCs with every history under 5,000 events, a failure under 64 KiB and every row in the catalog',
    async () => {
      const agentTaskQueue = `fleet-agent-${randomUUID()}`;
      await registerFleet(world.deps.catalog, agentTaskQueue, SDDCS, ['dc-east', 'dc-west']);
      const connection = await connectWorker(world.config.temporal);
      const agent = await Worker.create({
        connection,
        taskQueue: agentTaskQueue,
        activities: accountingAgent(() => true),
        maxConcurrentActivityTaskExecutions: 200,
      });
      const workflowId = `deploy:${FLEET_IMAGE.image}:${FLEET_IMAGE.version}:${randomUUID()}`;
      const handle = await world.client.workflow.start('DeployToSDDCs', {
        args: [{ image: FLEET_IMAGE.image, version: FLEET_IMAGE.version, sddcs: 'all' }],
        taskQueue: world.config.taskQueue,
        workflowId,
      });
      const failure = await agent.runUntil(workflowFailure(handle.result()));
      await connection.close();

      expect(failure.type).toBe('DeployIncomplete');
      expect(failure.message).toMatch(/^1000 of 1000 SDDCs failed: fleet-0000 \(InsufficientSpace: .*; 990 more$/);
      const result = failure.details![0] as DeployResult;
      expect(result.counts).toEqual({ failed: SDDCS });
      expect(result.results).toHaveLength(ROWS_KEPT);
      expect(result.results.every((r) => r.status === 'failed' && r.reason?.startsWith('InsufficientSpace'))).toBe(true);
      expect(result.rowsOmitted).toBe(SDDCS - ROWS_KEPT);
      expect(result.note).toContain(`vmhub show ${FLEET_IMAGE.image}@${FLEET_IMAGE.version}`);
      const resultBytes = Buffer.byteLength(JSON.stringify(result));
      expect(resultBytes).toBeLessThan(64 * KiB);
      // The failure as the server holds it: its message and details, and each batch's.
      const closed = async (id: string) => {
        const events = (await world.client.workflow.getHandle(id).fetchHistory()).events!;
        return events[events.length - 1].workflowExecutionFailedEventAttributes!.failure!;
      };
      const failureBytes = temporal.api.failure.v1.Failure.encode(await closed(workflowId)).finish().length;
      expect(failureBytes).toBeLessThan(64 * KiB);

      // Every SDDC's row is in the catalog, not in the parent's history.
      const deployments = await world.deps.catalog.deployments.of(FLEET_IMAGE.image, FLEET_IMAGE.version);
      expect(deployments).toHaveLength(SDDCS);
      expect(deployments.every((d) => d.status === 'failed' && d.error?.startsWith('InsufficientSpace'))).toBe(true);

      const progress = await handle.query<FleetProgress>('progress');
      expect(progress.batches.every((b) => b.done && b.sddcs <= BATCH_SIZE)).toBe(true);
      expect(progress.batches.reduce((n, b) => n + b.sddcs, 0)).toBe(SDDCS);
      const events = async (id: string) => (await world.client.workflow.getHandle(id).fetchHistory()).events!.length;
      const parentEvents = await events(workflowId);
      const batchEvents = await Promise.all(progress.batches.map((b) => events(b.workflowId)));
      for (const n of [parentEvents, ...batchEvents]) expect(n).toBeLessThan(5000);
      const batchFailureBytes = await Promise.all(
        progress.batches.map(async (b) => temporal.api.failure.v1.Failure.encode(await closed(b.workflowId)).finish().length),
      );
      for (const n of batchFailureBytes) expect(n).toBeLessThan(64 * KiB);

      // The batches carry the SDDC search attribute: each lists its own SDDCs.
      const first = await world.client.workflow.getHandle(progress.batches[0].workflowId).describe();
      expect(first.typedSearchAttributes.getAll().find((a) => a.key.name === 'VmSddc')?.value).toHaveLength(
        progress.batches[0].sddcs,
      );

      const figures = {
        sddcs: SDDCS,
        batches: progress.batches.length,
        parentEvents,
        batchEventsMax: Math.max(...batchEvents),
        batchEventsTotal: batchEvents.reduce((a, b) => a + b, 0),
        parentResultBytes: resultBytes,
        parentFailureBytes: failureBytes,
        batchFailureBytesMax: Math.max(...batchFailureBytes),
      };
      fs.mkdirSync('test-output', { recursive: true });
      fs.writeFileSync('test-output/fleet-history.json', JSON.stringify(figures, null, 2));
      process.stderr.write(
        `1,000-SDDC deploy (simulated): ${figures.batches} batches; parent ${parentEvents} events, batches at most ${figures.batchEventsMax} events; parent result ${resultBytes} bytes, failure ${failureBytes} bytes\n`,
      );
    },
    FLEET_TIMEOUT_MS,
  );
});
