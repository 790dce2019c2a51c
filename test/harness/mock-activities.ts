import { randomUUID } from 'node:crypto';
import { Context } from '@temporalio/activity';
import type { Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import type { Activities } from '../../src/activities';
import type { AgentActivities } from '../../src/activities/agent';
import type { DeploymentPlan, FleetPlan } from '../../src/activities/deploy';
import { batchesOf } from '../../src/shared/batches';
import type { DeployResultRow } from '../../src/shared/deploy-input';
import type { ContentLibraryTarget, LibraryPlacement } from '../../src/shared/target-kinds/kind';
import type { LibraryStreamActivities } from '../../src/activities/library-stream';
import { pollersOf } from '../../src/shared/agent-pollers';
import { testServerBinary } from '../../src/dev-services/tools';
import { planBlocks } from '../../src/shared/block-plan';
import { transferTaskQueueOf } from '../../src/shared/task-queues';
import { workflowSource } from '../../src/temporal/worker';
import { TRANSFER_ACTIVITIES } from '../../src/workflows/activity-options';

/**
 * The real workflows on the SDK's time-skipping test server with mocked activities: the fast tests of
 * their failure paths, and the recording of the histories that replay tests keep.
 */
const MiB = 1024 * 1024;
export const plan = planBlocks(64 * MiB, 4 * MiB); // 16 blocks: one range
export const location = { storage: 'east-primary', container: 'vm-images', blob: 'app/1.0.0/app-1.0.0.ova' };
export const metadata = {
  kind: 'iso' as const,
  volumeId: 'APP',
  volumeSizeBytes: plan.sizeBytes,
  bootable: false,
  joliet: false,
  udf: false,
};

/** The test server, with vmhub's search attributes registered (it starts with none). */
export async function startTestEnvironment(): Promise<TestWorkflowEnvironment> {
  const env = await TestWorkflowEnvironment.createTimeSkipping({
    server: { executable: { type: 'existing-path', path: testServerBinary() } },
  });
  const types = temporal.api.enums.v1.IndexedValueType;
  await (env.connection as Connection).operatorService.addSearchAttributes({
    namespace: env.namespace ?? 'default',
    searchAttributes: {
      VmImage: types.INDEXED_VALUE_TYPE_KEYWORD,
      VmImageVersion: types.INDEXED_VALUE_TYPE_KEYWORD,
      VmSddc: types.INDEXED_VALUE_TYPE_KEYWORD_LIST,
    },
  });
  return env;
}

/**
 * These activities split as workflows must schedule them: the transfers (TRANSFER_ACTIVITIES) and the
 * rest. Registering each side on its own queue only means a transfer scheduled on the control queue, or
 * the reverse, is never run, and the test that scheduled it fails.
 */
export function splitByQueue(activities: object): { control: object; transfer: object } {
  const transfers = new Set<string>(TRANSFER_ACTIVITIES);
  const entries = Object.entries(activities);
  return {
    control: Object.fromEntries(entries.filter(([name]) => !transfers.has(name))),
    transfer: Object.fromEntries(entries.filter(([name]) => transfers.has(name))),
  };
}

/** A mock's agentsPolling also answers a batch's one check of all its agents, queue by queue, as the real activity does. */
export function withBatchAgentCheck(activities: object): object {
  const { agentsPolling, agentsPollingEach } = activities as Partial<Activities>;
  if (!agentsPolling || agentsPollingEach) return activities;
  const each: Activities['agentsPollingEach'] = async ({ taskQueues, image, version }) =>
    Object.fromEntries(
      await Promise.all(
        taskQueues.map(async (taskQueue) => [
          taskQueue,
          pollersOf(await agentsPolling({ taskQueue, image, version, byQueue: true })),
        ]),
      ),
    );
  return { ...activities, agentsPollingEach: each };
}

/** Runs fn while a workflow worker with these activities polls a fresh task queue (and its transfer queue), and an agent if given. */
export async function runWorker<T>(
  env: TestWorkflowEnvironment,
  activities: object,
  fn: (taskQueue: string) => Promise<T>,
  agent?: { taskQueue: string; activities: Partial<AgentActivities> },
): Promise<T> {
  const taskQueue = `wf-${randomUUID()}`;
  const options = { connection: env.nativeConnection, maxHeartbeatThrottleInterval: '100 milliseconds' as const };
  const split = splitByQueue(withBatchAgentCheck(activities));
  const worker = await Worker.create({ ...options, taskQueue, ...workflowSource(), activities: split.control });
  // A worker must serve something: with no transfer among the activities, nothing polls the transfer queue.
  const transfers =
    Object.keys(split.transfer).length > 0
      ? await Worker.create({ ...options, taskQueue: transferTaskQueueOf(taskQueue), activities: split.transfer })
      : undefined;
  const agentWorker = agent && (await Worker.create({ ...options, taskQueue: agent.taskQueue, activities: agent.activities }));
  const run = () => (transfers ? transfers.runUntil(() => worker.runUntil(fn(taskQueue))) : worker.runUntil(fn(taskQueue)));
  return agentWorker ? agentWorker.runUntil(run) : run();
}

/** Heartbeats until cancelled, as a long transfer does; logs when it started and when it stopped. */
export function transferUntilCancelled(log: string[], name: string): () => Promise<never> {
  return async () => {
    log.push(`${name} started`);
    const ctx = Context.current();
    try {
      for (;;) {
        ctx.heartbeat();
        await ctx.sleep(50);
      }
    } finally {
      log.push(`${name} stopped`);
    }
  };
}

/** A publish whose every step succeeds, logging commits and cleanups; overrides change single steps. */
export function publishActivities(log: string[], overrides: Partial<Activities> = {}): Partial<Activities> {
  return {
    checkSddcs: async () => undefined,
    transferWorkersPolling: async () => 1,
    probeSource: async () => ({ format: 'ova', plan, rangeFanOut: 4, origin: 'repository' }),
    claimVersion: async () => ({ state: 'claimed', location }),
    seedFromEarlier: async () => ({ blocks: 0 }),
    inspectSource: async () => ({ sha256: 'a'.repeat(64), blockListDigest: 'b'.repeat(64), metadata }),
    stageBlockRange: async ({ range }) => ({ uploaded: range.count, reused: 0, bytesUploaded: range.count * plan.blockSize }),
    commitBlocks: async () => {
      log.push('commit');
      return { committed: true, etag: '"1"' };
    },
    signProvenance: async (i) => ({
      keyid: 'c'.repeat(64),
      signedAt: '2025-01-01T00:00:00.000Z',
      envelopeBlob: `${i.location.blob}.dsse.json`,
    }),
    markAvailable: async (i) => ({
      ...i,
      format: 'ova',
      sizeBytes: plan.sizeBytes,
      blockSize: plan.blockSize,
      blockCount: plan.blockCount,
      location,
    }),
    abandonPublish: async (i) => {
      log.push(`abandon ${i.status}`);
      return { owned: true, removed: ['12 staged blocks', `catalog record marked ${i.status}`] };
    },
    replicaLocations: async () => ({ replicas: [] }),
    noteOverlap: async () => null,
    ...overrides,
  };
}

/**
 * Replication to west-replica, which copies at once, and north-replica, which copies until cancelled;
 * after the cancel, the check of each replica left finds its blob missing and marks it stale with the note.
 */
export function replicationUntilCancelled(log: string[]): Partial<Activities> {
  const copyUntilCancelled = transferUntilCancelled(log, 'replicate');
  return {
    replicaLocations: async () => ({ replicas: ['west-replica', 'north-replica'] }),
    replicateImage: async ({ location: replica }) =>
      replica === 'west-replica' ? { location: replica, status: 'verified', etag: '"1"' } : copyUntilCancelled(),
    checkReplica: async ({ location: replica, note }) => {
      log.push(`check ${replica}: ${note}`);
      return { location: replica, status: 'stale', reason: `blob is missing (${note})` };
    },
  };
}

/** A deploy plan of app@1.0.0 to SDDCs served by one agent task queue; an SDDC named `tiny` does not fit. */
export function deployPlan(taskQueue: string, names: string[]): DeploymentPlan {
  return {
    image: 'app',
    version: '1.0.0',
    format: 'ova',
    sha256: 'a'.repeat(64),
    sizeBytes: plan.sizeBytes,
    blob: location.blob,
    targets: names.map((name) => ({
      sddc: { name, dataCenter: 'dc-east', taskQueue },
      shortfall: name === 'tiny' ? 'needs 4 CPUs, has 2' : undefined,
      sources: [{ location: 'east-primary', role: 'primary' as const, dataCenter: 'dc-east' }],
    })),
  };
}

/** deployPlan to content-library SDDCs (`target`), with the descriptor's `resources` for their checks. */
export function libraryDeployPlan(
  taskQueue: string,
  names: string[],
  target: ContentLibraryTarget,
  resources: NonNullable<DeploymentPlan['resources']>,
): DeploymentPlan {
  const base = deployPlan(taskQueue, names);
  return { ...base, resources, targets: base.targets.map((t) => ({ ...t, sddc: { ...t.sddc, target } })) };
}

/** The plan a fanned-out deploy's parent sees for a whole-fleet plan: the names in batches. */
export function fleetPlanOf({ image, version, sizeBytes, targets }: DeploymentPlan): FleetPlan {
  return { image, version, sizeBytes, batches: batchesOf(targets.map((t) => t.sddc)) };
}

/** The control plane's side of a deploy, recording every row it is told to record. */
export function deployActivities(
  rows: DeployResultRow[],
  agentTaskQueue: string,
  names: string[],
  agentsPolling: number,
): Partial<Activities> {
  return {
    planFleet: async () => fleetPlanOf(deployPlan(agentTaskQueue, names)),
    // A batch plans only the SDDCs it was given.
    planDeployment: async (input) => deployPlan(agentTaskQueue, input.sddcs === 'all' ? names : input.sddcs),
    agentsPolling: async () => agentsPolling,
    recordDeployment: async ({ row }) => {
      rows.push(row);
    },
    markSourceFailures: async () => undefined,
    holdDeployLease: async () => undefined,
    releaseDeployLease: async () => undefined,
  };
}

/** An agent's download that always succeeds at once. */
export async function deployedDownload() {
  return {
    status: 'deployed' as const,
    source: 'east-primary',
    path: '/datastore/app/1.0.0/app-1.0.0.ova',
    bytes: 1,
    bytesFetched: 1,
    bytesResumed: 0,
    sourceFailures: [],
  };
}

/** An agent's streamed content-library deploy that filled the item `placement` names for its SDDC. */
export function streamedToLibrary(placement: (sddc: string) => LibraryPlacement): LibraryStreamActivities['streamToLibrary'] {
  return async ({ sddc }) => ({ ...(await deployedDownload()), target: placement(sddc), bytesSent: 1 });
}
