import { randomUUID } from 'node:crypto';
import type { WorkflowHandle } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { Worker } from '@temporalio/worker';
import type { RetireResult } from '../src/shared/lifecycle-input';
import { BATCH_SIZE } from '../src/shared/batches';
import { connectWorker } from '../src/temporal/connection';
import { accountingRemover, FLEET_IMAGE, recordFleetDeployments, registerFleet } from './harness/simulated-fleet';
import { startWorld, type TestWorld } from './helpers';

const SDDCS = 1000;
const RETIRE_TIMEOUT_MS = 10 * 60_000;
const { EventType } = temporal.api.enums.v1;
type HistoryEvent = temporal.api.history.v1.IHistoryEvent;

/** The most activities a history ever had scheduled and not yet resolved. */
function mostPending(events: HistoryEvent[]): number {
  const ends = new Set([
    EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
    EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED,
    EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT,
    EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED,
  ]);
  let pending = 0;
  let most = 0;
  for (const e of events) {
    if (e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED) most = Math.max(most, ++pending);
    else if (e.eventType !== null && e.eventType !== undefined && ends.has(e.eventType)) pending--;
  }
  return most;
}

async function historyOf(world: TestWorld, workflowId: string, runId?: string): Promise<HistoryEvent[]> {
  return (await world.client.workflow.getHandle(workflowId, runId).fetchHistory()).events ?? [];
}

/** The children a run started, by workflow ID. */
function childrenOf(events: HistoryEvent[]): string[] {
  return events.flatMap((e) => {
    const id = e.childWorkflowExecutionStartedEventAttributes?.workflowExecution?.workflowId;
    return id ? [id] : [];
  });
}

/** A fleet of SDDCs that hold FLEET_IMAGE, served by one agent queue whose removals only account. */
async function fleetHolding(world: TestWorld, count: number) {
  const agentTaskQueue = `retire-agent-${randomUUID()}`;
  const names = await registerFleet(world.deps.catalog, agentTaskQueue, count, ['dc-east', 'dc-west']);
  await recordFleetDeployments(world.deps.catalog, names);
  return { agentTaskQueue, names };
}

/**
 * RetireImage on the dev server with the real catalog and control activities, the agents only accounting:
 * a fleet's retire keeps every history small and no run's pending activities above a batch, and a
 * Workflow Reset in the middle of a retire still ends with the catalog and the result agreeing.
 */
describe('RetireImage at fleet scale', () => {
  let world: TestWorld;
  beforeAll(async () => {
    world = await startWorld();
  });
  afterAll(() => world.close());

  it(
    'retires a version held by 1,000 SDDCs: every history under 5,000 events, no run with more than a batch of activities pending',
    async () => {
      const { agentTaskQueue, names } = await fleetHolding(world, SDDCS);
      const removed = new Set<string>();
      const connection = await connectWorker(world.config.temporal);
      const agent = await Worker.create({
        connection,
        taskQueue: agentTaskQueue,
        activities: accountingRemover(removed),
        maxConcurrentActivityTaskExecutions: 200,
      });
      const workflowId = `retire:${FLEET_IMAGE.image}:${FLEET_IMAGE.version}:${randomUUID()}`;
      const handle = await world.client.workflow.start('RetireImage', {
        args: [{ image: FLEET_IMAGE.image, version: FLEET_IMAGE.version }],
        taskQueue: world.config.taskQueue,
        workflowId,
      });
      const result = (await agent.runUntil(handle.result())) as RetireResult;
      await connection.close();

      expect(result.status).toBe('retired');
      expect(result.sddcs.map((s) => s.sddc).sort()).toEqual(names);
      expect(removed.size).toBe(SDDCS);
      const record = await world.deps.catalog.versions.get(FLEET_IMAGE.image, FLEET_IMAGE.version);
      expect(record).toMatchObject({ status: 'retired', retired: { by: { workflowId, runId: handle.firstExecutionRunId } } });
      const rows = await world.deps.catalog.deployments.of(FLEET_IMAGE.image, FLEET_IMAGE.version);
      expect(rows.filter((r) => r.status === 'removed')).toHaveLength(SDDCS);

      const parent = await historyOf(world, workflowId);
      const children = childrenOf(parent);
      expect(children).toHaveLength(SDDCS / BATCH_SIZE);
      const histories = [parent, ...(await Promise.all(children.map((id) => historyOf(world, id))))];
      for (const events of histories) {
        expect(events.length).toBeLessThan(5000);
        expect(mostPending(events)).toBeLessThanOrEqual(BATCH_SIZE);
      }
      // Each batch did its SDDCs' work: a check and a removal each, and one bulk record.
      expect(mostPending(histories[1])).toBe(BATCH_SIZE);
      process.stderr.write(
        `1,000-SDDC retire (simulated): parent ${parent.length} events, batches at most ${Math.max(...histories.slice(1).map((h) => h.length))} events\n`,
      );
    },
    RETIRE_TIMEOUT_MS,
  );
});

describe('RetireImage reset mid-retire', () => {
  let world: TestWorld;
  beforeAll(async () => {
    world = await startWorld();
  });
  afterAll(() => world.close());

  /** Waits until the run's history holds a completed workflow task after an event `after` says; returns that task's event ID. */
  async function lastTaskAfter(handle: WorkflowHandle, after: (e: HistoryEvent) => boolean): Promise<HistoryEvent['eventId']> {
    for (;;) {
      const events = (await handle.fetchHistory()).events ?? [];
      const from = events.findIndex(after);
      const task = events
        .slice(from + 1)
        .reverse()
        .find((e) => e.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED);
      if (from >= 0 && task) return task.eventId;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  it(
    'a Workflow Reset to the last workflow task while the SDDCs are being removed ends retired, and the catalog agrees',
    async () => {
      const { agentTaskQueue, names } = await fleetHolding(world, 5);
      let entered!: () => void;
      const inRemoval = new Promise<void>((resolve) => (entered = resolve));
      let release!: () => void;
      const released = new Promise<void>((resolve) => (release = resolve));
      const removed = new Set<string>();
      const connection = await connectWorker(world.config.temporal);
      const agent = await Worker.create({
        connection,
        taskQueue: agentTaskQueue,
        activities: accountingRemover(removed, () => (entered(), released)),
      });
      const workflowId = `retire:${FLEET_IMAGE.image}:${FLEET_IMAGE.version}:${randomUUID()}`;
      const handle = await world.client.workflow.start('RetireImage', {
        args: [{ image: FLEET_IMAGE.image, version: FLEET_IMAGE.version }],
        taskQueue: world.config.taskQueue,
        workflowId,
      });
      const first = handle.firstExecutionRunId;
      const result = await agent.runUntil(async () => {
        await inRemoval;
        // The batch has told the retire it removes: the reset run must keep the claim and finish.
        const task = await lastTaskAfter(handle, (e) => e.eventType === EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED);
        const { runId }: temporal.api.workflowservice.v1.IResetWorkflowExecutionResponse =
          await world.client.workflowService.resetWorkflowExecution({
            namespace: world.client.options.namespace,
            workflowExecution: { workflowId, runId: first },
            reason: 'test: reset mid-retire',
            workflowTaskFinishEventId: task,
            requestId: randomUUID(),
          });
        expect(runId).toBeTruthy();
        expect(runId).not.toBe(first);
        release();
        const reset = world.client.workflow.getHandle(workflowId, runId!);
        const out = (await reset.result()) as RetireResult;
        // What survives the reset: the chain's first run, which the claim names.
        const described = await reset.describe();
        expect(described.raw.workflowExecutionInfo?.firstRunId).toBe(first);
        return out;
      });
      await connection.close();

      // The run the reset replaced was terminated by it; the reset run finished the retire.
      expect((await world.client.workflow.getHandle(workflowId, first).describe()).status.name).toBe('TERMINATED');
      expect(result.status).toBe('retired');
      expect(result.sddcs.map((s) => s.sddc).sort()).toEqual(names);
      expect([...removed].sort()).toEqual(names);
      const record = await world.deps.catalog.versions.get(FLEET_IMAGE.image, FLEET_IMAGE.version);
      expect(record).toMatchObject({ status: 'retired', retired: { by: { workflowId, runId: first } } });
      const rows = await world.deps.catalog.deployments.of(FLEET_IMAGE.image, FLEET_IMAGE.version);
      expect(rows.map((r) => r.status)).toEqual(names.map(() => 'removed'));
    },
    RETIRE_TIMEOUT_MS,
  );
});
