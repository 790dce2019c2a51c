import { randomUUID } from 'node:crypto';
import { Context } from '@temporalio/activity';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Activities } from '../../src/activities';
import type { AgentActivities } from '../../src/activities/agent';
import type { RetirePlan, RetireTarget } from '../../src/activities/lifecycle';
import { planBlocks, type BlockPlan } from '../../src/shared/block-plan';
import { deployWorkflowId, type DeployResultRow, type FleetProgress } from '../../src/shared/deploy-input';
import type { RetentionResult } from '../../src/shared/lifecycle-input';
import type { PublishResult } from '../../src/shared/publish-input';
import { transferTaskQueueOf } from '../../src/shared/task-queues';
import { retireAgent, retireRef, staleReplicaControl } from './lifecycle-mocks';
import {
  deployActivities,
  deployedDownload,
  deployPlan,
  fleetPlanOf,
  location,
  publishActivities,
  replicationUntilCancelled,
  runWorker,
  transferUntilCancelled,
} from './mock-activities';

/**
 * The paths of the newest workflow code, recorded with it (`-v2`): the first recordings were made before
 * these patches, so none of them replays the code behind them. test/harness/history-patches.ts lists the
 * patches each must hold, and the recorder refuses a recording without them.
 */
export type Save = (name: string, workflowId: string) => Promise<void>;
export type Recording = (env: TestWorkflowEnvironment, save: Save) => Promise<void>;

const MiB = 1024 * 1024;
/** 64 blocks: four ranges. */
const fourRanges = planBlocks(256 * MiB, 4 * MiB);

export const v2Recordings: Record<string, Recording> = {
  'publish-with-deploy-v2': recordPublishWithDeploy,
  'publish-signed-v2': keeping('publish-with-deploy-v2', 'publish-signed-v2', recordPublishWithDeploy),
  'publish-cancelled-v2': recordPublishCancelled,
  'publish-no-transfer-worker-v2': recordNoTransferWorker,
  'publish-cancelled-replicating-v2': recordCancelledReplicating,
  'deploy-fanned-out-v2': recordFannedOutDeploy,
  'deploy-cancelled-v2': recordDeployCancelled,
  'deploy-no-agent-batch-v2': recordDeployWithoutAgent,
  'deploy-batch-check-v2': keeping('deploy-no-agent-batch-v2', 'deploy-batch-check-v2', recordDeployWithoutAgent),
  'retire-fleet-v2': recordRetireFleet,
  'retire-batch-check-v2': keeping('retire-fleet-batch-v2', 'retire-batch-check-v2', recordRetireFleet),
  'retire-cancelled-v2': recordRetireCancelled,
  'apply-retention-v2': recordRetention,
  'verify-recopied-v2': recordVerifyRecopied,
  'verify-hashed-v2': keeping('verify-recopied-v2', 'verify-hashed-v2', recordVerifyRecopied),
};

/** A recording run again to keep one of its histories under a new name: the same path, taken by newer code. */
function keeping(name: string, as: string, record: Recording): Recording {
  return (env, save) => record(env, async (saved, workflowId) => (saved === name ? save(as, workflowId) : undefined));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until `log` holds `count` lines ending with `suffix`. */
async function whenLogged(log: string[], suffix: string, count: number): Promise<void> {
  while (log.filter((l) => l.endsWith(suffix)).length < count) await sleep(20);
}

/** Waits for a run to end, and throws unless it failed as the recording means it to. */
async function failureOf(result: Promise<unknown>, expected: (cause: unknown) => boolean, what: string): Promise<void> {
  const err = await result.then(
    () => undefined,
    (e: unknown) => e,
  );
  const cause = err instanceof WorkflowFailedError ? err.cause : err;
  if (!expected(cause)) throw new Error(`the run was to end ${what}, not with ${String(cause)}`);
}

const isCancel = (cause: unknown) => cause instanceof CancelledFailure;
const typed = (type: string) => (cause: unknown) => cause instanceof ApplicationFailure && cause.type === type;

/** A publish of `plan` whose every step succeeds, replicated to the given locations. */
export function publishOf(plan: BlockPlan, replicas: string[], overrides: Partial<Activities> = {}): Partial<Activities> {
  return publishActivities([], {
    probeSource: async () => ({ format: 'ova', plan, rangeFanOut: 8, origin: 'repository' }),
    stageBlockRange: async ({ range }) => ({ uploaded: range.count, reused: 0, bytesUploaded: range.count * plan.blockSize }),
    markAvailable: async (i) => ({
      ...i,
      format: 'ova',
      sizeBytes: plan.sizeBytes,
      blockSize: plan.blockSize,
      blockCount: plan.blockCount,
      location,
    }),
    replicaLocations: async () => ({ replicas }),
    replicateImage: async ({ location: replica }) => ({ location: replica, status: 'verified', etag: '"1"' }),
    ...overrides,
  });
}

/**
 * A deploy's control side for SDDCs in two data centers: names starting with `west` are in dc-west, and
 * one ending with `tiny` does not fit.
 */
function twoDataCenters(rows: DeployResultRow[], agentQueue: string, names: string[]): Partial<Activities> {
  const planOf = (sddcs: string[]) => {
    const plan = deployPlan(agentQueue, sddcs);
    const targets = plan.targets.map((t) => ({
      ...t,
      sddc: { ...t.sddc, dataCenter: t.sddc.name.startsWith('west') ? 'dc-west' : 'dc-east' },
      shortfall: t.sddc.name.endsWith('tiny') ? 'needs 4 CPUs, has 2' : undefined,
    }));
    return { ...plan, targets };
  };
  return {
    ...deployActivities(rows, agentQueue, names, 1),
    planFleet: async () => fleetPlanOf(planOf(names)),
    planDeployment: async (input) => planOf(input.sddcs === 'all' ? names : input.sddcs),
  };
}

/** Four ranges, two replicas, then a DeployToSDDCs child over two data centers. */
async function recordPublishWithDeploy(env: TestWorkflowEnvironment, save: Save): Promise<void> {
  const agentQueue = `sddc-${randomUUID()}`;
  const names = ['east-1', 'west-1'];
  const rows: DeployResultRow[] = [];
  const control = { ...publishOf(fourRanges, ['west-replica', 'north-replica']), ...twoDataCenters(rows, agentQueue, names) };
  const workflowId = `publish:app:4.0.0:${randomUUID()}`;
  const result = await runWorker(
    env,
    control,
    (taskQueue) =>
      env.client.workflow.execute('PublishImage', {
        args: [{ source: 'app.ova', image: 'app', version: '4.0.0', deployTo: names }],
        taskQueue,
        workflowId,
      }) as Promise<PublishResult>,
    { taskQueue: agentQueue, activities: { downloadImage: deployedDownload } },
  );
  if (result.deploy?.workflowId !== deployWorkflowId('app', '4.0.0', workflowId) || rows.length !== 2) {
    throw new Error(`the publish did not deploy to both SDDCs: ${JSON.stringify(result.deploy)}`);
  }
  await save('publish-with-deploy-v2', workflowId);
}

/** Publishes app@`version`, cancels it once `when` resolves, and returns its workflow ID once it ended Cancelled. */
async function cancelPublish(
  env: TestWorkflowEnvironment,
  activities: object,
  version: string,
  when: () => Promise<void>,
): Promise<string> {
  const workflowId = `publish:app:${version}:${randomUUID()}`;
  await runWorker(env, activities, async (taskQueue) => {
    const handle = await env.client.workflow.start('PublishImage', {
      args: [{ source: 'app.ova', image: 'app', version }],
      taskQueue,
      workflowId,
    });
    await when();
    await handle.cancel();
    await failureOf(handle.result(), isCancel, 'Cancelled');
  });
  return workflowId;
}

/** Cancelled while four ranges stage: one range's worker is gone, so its staging ends with a timeout, not a cancel. */
async function recordPublishCancelled(env: TestWorkflowEnvironment, save: Save): Promise<void> {
  const log: string[] = [];
  const stage = transferUntilCancelled(log, 'stage');
  const activities = publishOf(fourRanges, [], {
    stageBlockRange: async ({ range }) => {
      if (range.first !== 0) return stage();
      await stage().catch(() => undefined);
      throw ApplicationFailure.nonRetryable('activity Heartbeat timeout', 'Timeout');
    },
    inspectSource: transferUntilCancelled(log, 'inspect'),
    abandonPublish: async (i) => {
      log.push(`abandon ${i.status}`);
      return { owned: true, removed: ['64 staged blocks', `catalog record marked ${i.status}`] };
    },
  });
  const workflowId = await cancelPublish(env, activities, '4.0.1', () => whenLogged(log, 'started', 5));
  if (!log.includes('abandon cancelled')) throw new Error(`the cancelled publish did not clean up: ${log.join(', ')}`);
  await save('publish-cancelled-v2', workflowId);
}

/** Cancelled once the version is available, while one replica copies: the copy stops, then that replica is checked and marked stale. */
async function recordCancelledReplicating(env: TestWorkflowEnvironment, save: Save): Promise<void> {
  const log: string[] = [];
  const activities = publishOf(fourRanges, [], replicationUntilCancelled(log));
  const workflowId = await cancelPublish(env, activities, '4.0.3', () => whenLogged(log, 'replicate started', 1));
  if (!log.some((l) => l.startsWith('check north-replica')))
    throw new Error(`the stopped replica was not checked: ${log.join(', ')}`);
  await save('publish-cancelled-replicating-v2', workflowId);
}

/** No worker polls the transfer queue: the publish fails NoTransferWorker before it claims anything. */
async function recordNoTransferWorker(env: TestWorkflowEnvironment, save: Save): Promise<void> {
  const claims: string[] = [];
  const activities = publishOf(fourRanges, [], {
    transferWorkersPolling: async () => 0,
    claimVersion: async ({ version }) => {
      claims.push(version);
      return { state: 'claimed', location };
    },
  });
  const workflowId = `publish:app:4.0.2:${randomUUID()}`;
  await runWorker(env, activities, (taskQueue) =>
    failureOf(
      env.client.workflow.execute('PublishImage', {
        args: [{ source: 'app.ova', image: 'app', version: '4.0.2' }],
        taskQueue,
        workflowId,
      }),
      typed('NoTransferWorker'),
      'NoTransferWorker',
    ),
  );
  if (claims.length > 0) throw new Error('the publish claimed a version with no transfer worker polling');
  await save('publish-no-transfer-worker-v2', workflowId);
}

/**
 * A deploy under its lease to two data centers: dc-east deploys, dc-west has one SDDC deployed, one
 * skipped and one whose sources all fail, so its batch and the deploy end DeployIncomplete.
 */
async function recordFannedOutDeploy(env: TestWorkflowEnvironment, save: Save): Promise<void> {
  const agentQueue = `sddc-${randomUUID()}`;
  const names = ['east-1', 'east-2', 'west-1', 'west-2', 'west-tiny'];
  const rows: DeployResultRow[] = [];
  const steps: string[] = [];
  const control: Partial<Activities> = {
    ...twoDataCenters(rows, agentQueue, names),
    holdDeployLease: async () => void steps.push('hold'),
    releaseDeployLease: async () => void steps.push('release'),
    markSourceFailures: async ({ failures }) => void steps.push(`marked ${failures.map((f) => f.location).join()}`),
  };
  const downloadImage: AgentActivities['downloadImage'] = async (input) => {
    if (input.sddc !== 'west-2') return deployedDownload();
    throw ApplicationFailure.create({
      message: 'no source delivered app@1.0.0: east-primary: committed block 3 differs',
      type: 'NoSource',
      nonRetryable: true,
      details: [[{ location: 'east-primary', status: 'stale', reason: 'committed block 3 differs' }]],
    });
  };
  const workflowId = `deploy:app:1.0.0:${randomUUID()}`;
  const batches = await runWorker(
    env,
    control,
    async (taskQueue) => {
      const deploy = await env.client.workflow.start('DeployToSDDCs', {
        args: [{ image: 'app', version: '1.0.0', sddcs: names }],
        taskQueue,
        workflowId,
      });
      await failureOf(deploy.result(), typed('DeployIncomplete'), 'DeployIncomplete');
      return (await deploy.query<FleetProgress>('progress')).batches;
    },
    { taskQueue: agentQueue, activities: { downloadImage } },
  );
  if (steps.join() !== 'hold,marked east-primary,release' || rows.length !== names.length || batches.length !== 2) {
    throw new Error(`the deploy did not run as meant: ${steps.join()}; ${rows.length} rows, ${batches.length} batches`);
  }
  await save('deploy-fanned-out-v2', workflowId);
  await save('deploy-batch-v2', batches[1].workflowId);
}

/**
 * Cancelled while two SDDCs download: east-1's download ends by the cancel, east-2's agent is hung, so its
 * download ends with a timeout after the cancel. Both partial downloads are discarded, the lease released.
 */
async function recordDeployCancelled(env: TestWorkflowEnvironment, save: Save): Promise<void> {
  const agentQueue = `sddc-${randomUUID()}`;
  const names = ['east-1', 'east-2'];
  const log: string[] = [];
  const control: Partial<Activities> = {
    ...deployActivities([], agentQueue, names, 1),
    releaseDeployLease: async () => void log.push('release'),
  };
  const agent: Partial<AgentActivities> = {
    downloadImage: async (input) => {
      const download = transferUntilCancelled(log, `download ${input.sddc}`);
      if (input.sddc === 'east-1') return download();
      await download().catch(() => undefined);
      throw ApplicationFailure.nonRetryable('activity Heartbeat timeout', 'Timeout');
    },
    discardDownload: async (input) => {
      log.push(`discard ${input.sddc}`);
      return { removed: true };
    },
  };
  const workflowId = `deploy:app:1.0.0:${randomUUID()}`;
  await runWorker(
    env,
    control,
    async (taskQueue) => {
      const deploy = await env.client.workflow.start('DeployToSDDCs', {
        args: [{ image: 'app', version: '1.0.0', sddcs: names }],
        taskQueue,
        workflowId,
      });
      await whenLogged(log, 'started', 2);
      await deploy.cancel();
      await failureOf(deploy.result(), isCancel, 'Cancelled');
    },
    { taskQueue: agentQueue, activities: agent },
  );
  const discarded = log.filter((l) => l.startsWith('discard')).sort();
  if (discarded.join() !== 'discard east-1,discard east-2' || !log.includes('release')) {
    throw new Error(`the cancelled deploy did not clean up: ${log.join(', ')}`);
  }
  await save('deploy-cancelled-v2', workflowId);
  await save('deploy-cancelled-batch-v2', `${workflowId}:1-dc-east`);
}

/**
 * Two SDDCs, lab-1's agent polling nowhere: its batch skips it and the deploy completes. Then the same
 * deploy all or nothing, whose plan finds lab-1 without an agent: refused NoAgent before any batch.
 */
async function recordDeployWithoutAgent(env: TestWorkflowEnvironment, save: Save): Promise<void> {
  const agentQueue = `sddc-${randomUUID()}`;
  const names = ['east-1', 'lab-1'];
  const rows: DeployResultRow[] = [];
  const planOf = (sddcs: string[]) => {
    const plan = deployPlan(agentQueue, sddcs);
    const silent = (name: string) => (name === 'lab-1' ? 'sddc-lab-1' : agentQueue);
    return { ...plan, targets: plan.targets.map((t) => ({ ...t, sddc: { ...t.sddc, taskQueue: silent(t.sddc.name) } })) };
  };
  const control: Partial<Activities> = {
    ...deployActivities(rows, agentQueue, names, 1),
    planFleet: async (input) => ({
      ...fleetPlanOf(planOf(names)),
      ...(input.allOrNothing ? { noAgent: { count: 1, sddcs: [{ name: 'lab-1', taskQueue: 'sddc-lab-1' }] } } : {}),
    }),
    planDeployment: async (input) => planOf(input.sddcs === 'all' ? names : input.sddcs),
    agentsPolling: async (input) => (input.taskQueue === agentQueue ? 1 : 0),
  };
  const workflowId = `deploy:app:1.0.0:${randomUUID()}`;
  const refusedId = `deploy:app:1.0.0:${randomUUID()}`;
  await runWorker(
    env,
    control,
    async (taskQueue) => {
      await env.client.workflow.execute('DeployToSDDCs', {
        args: [{ image: 'app', version: '1.0.0', sddcs: names }],
        taskQueue,
        workflowId,
      });
      const refused = env.client.workflow.execute('DeployToSDDCs', {
        args: [{ image: 'app', version: '1.0.0', sddcs: names, allOrNothing: true }],
        taskQueue,
        workflowId: refusedId,
      });
      await failureOf(refused, typed('NoAgent'), 'NoAgent');
    },
    { taskQueue: agentQueue, activities: { downloadImage: deployedDownload } },
  );
  if (
    rows
      .map((r) => `${r.sddc} ${r.status}`)
      .sort()
      .join() !== 'east-1 deployed,lab-1 skipped'
  ) {
    throw new Error(`the deploy did not skip lab-1 alone: ${JSON.stringify(rows)}`);
  }
  await save('deploy-no-agent-batch-v2', `${workflowId}:1-dc-east`);
  await save('deploy-all-or-nothing-v2', refusedId);
}

/** A retire plan of app@1.0.0 from these SDDCs, all served by one agent queue. */
function retiring(sddcs: RetireTarget[]): RetirePlan {
  return {
    state: 'retiring',
    previous: 'available',
    ...retireRef,
    format: 'iso',
    sha256: 'a'.repeat(64),
    sizeBytes: 1024,
    blob: 'app/1.0.0/app-1.0.0.iso',
    locations: ['east-primary', 'west-replica'],
    sddcs,
  };
}

/** The control side of a retire of `plan`, logging the steps that change the catalog or storage. */
function retireSteps(log: string[], plan: (version: string) => RetirePlan): Partial<Activities> {
  return {
    beginRetire: async ({ version }) => plan(version),
    agentsPolling: async () => 1,
    removeBlob: async ({ location: storage }) => (log.push(`blob ${storage}`), { removed: true }),
    recordRemovals: async ({ sddcs }) => void log.push(`recorded ${sddcs.length}`),
    finishRetire: async () => void log.push('tombstone'),
    abandonRetire: async () => void log.push('abandon'),
  };
}

/** 150 SDDCs (one a content library's): two RetireSddcBatch children; the second batch's history is kept. */
async function recordRetireFleet(env: TestWorkflowEnvironment, save: Save): Promise<void> {
  const agentQueue = `sddc-${randomUUID()}`;
  const library = libraryTarget(agentQueue);
  const sddcs: RetireTarget[] = Array.from({ length: 150 }, (_, i) =>
    i === 149 ? library : { sddc: `sddc-${String(i).padStart(3, '0')}`, taskQueue: agentQueue },
  );
  const log: string[] = [];
  const workflowId = `retire:app:1.0.0:${randomUUID()}`;
  const firstRunId = await runWorker(
    env,
    retireSteps(log, () => retiring(sddcs)),
    async (taskQueue) => {
      const handle = await env.client.workflow.start('RetireImage', { args: [retireRef], taskQueue, workflowId });
      await handle.result();
      return handle.firstExecutionRunId;
    },
    { taskQueue: agentQueue, activities: retireAgent([]) },
  );
  const removals = log.filter((l) => l.startsWith('recorded')).sort();
  if (removals.join() !== 'recorded 100,recorded 50' || log[log.length - 1] !== 'tombstone') {
    throw new Error(`the retire did not run in two batches: ${log.join(', ')}`);
  }
  await save('retire-fleet-v2', workflowId);
  await save('retire-fleet-batch-v2', `${workflowId}:${firstRunId}:2`);
}

/** An SDDC whose copy is a content library's item. */
function libraryTarget(agentQueue: string): RetireTarget {
  const target = {
    kind: 'content-library' as const,
    vcenter: 'https://vc.example.com/',
    library: 'vmhub',
    usernameEnv: 'U',
    passwordEnv: 'P',
  };
  return { sddc: 'lib-1', taskQueue: agentQueue, target };
}

/** Cancelled while its batch checks the agents, before any removal: the claim is given back, nothing removed. */
async function recordRetireCancelled(env: TestWorkflowEnvironment, save: Save): Promise<void> {
  const agentQueue = `sddc-${randomUUID()}`;
  const log: string[] = [];
  const control: Partial<Activities> = {
    ...retireSteps(log, () => retiring([{ sddc: 'dir-1', taskQueue: agentQueue }, libraryTarget(agentQueue)])),
    agentsPolling: transferUntilCancelled(log, 'polling'),
  };
  const workflowId = `retire:app:1.0.0:${randomUUID()}`;
  const firstRunId = await runWorker(
    env,
    control,
    async (taskQueue) => {
      const handle = await env.client.workflow.start('RetireImage', { args: [retireRef], taskQueue, workflowId });
      await whenLogged(log, 'started', 2);
      await handle.cancel();
      await failureOf(handle.result(), isCancel, 'Cancelled');
      return handle.firstExecutionRunId;
    },
    { taskQueue: agentQueue, activities: retireAgent(log) },
  );
  if (log.filter((l) => !l.startsWith('polling')).join() !== 'abandon') {
    throw new Error(`the cancelled retire did not only give its claim back: ${log.join(', ')}`);
  }
  await save('retire-cancelled-v2', workflowId);
  await save('retire-cancelled-batch-v2', `${workflowId}:${firstRunId}:1`);
}

/** Five versions, four retiring at once: one is being deployed, one was retired already. */
async function recordRetention(env: TestWorkflowEnvironment, save: Save): Promise<void> {
  const agentQueue = `sddc-${randomUUID()}`;
  const versions = ['1.0.0', '1.1.0', '1.2.0', '1.3.0', '1.4.0'];
  const control: Partial<Activities> = {
    ...retireSteps([], (version) => {
      if (version === '1.2.0') throw ApplicationFailure.nonRetryable('app@1.2.0 is being deployed', 'DeployRunning');
      return version === '1.4.0' ? { state: 'retired' } : { ...retiring([{ sddc: 'dir-1', taskQueue: agentQueue }]), version };
    }),
    retentionPlan: async () => versions.map((version) => ({ image: 'app', version })),
  };
  const workflowId = `retention:${randomUUID()}`;
  const result = await runWorker(
    env,
    control,
    (taskQueue) =>
      env.client.workflow.execute('ApplyRetention', { args: [{}], taskQueue, workflowId }) as Promise<RetentionResult>,
    { taskQueue: agentQueue, activities: retireAgent([]) },
  );
  if (result.retired.length !== 4 || result.failed[0]?.ref !== 'app@1.2.0') {
    throw new Error(`retention did not retire as meant: ${JSON.stringify(result)}`);
  }
  await save('apply-retention-v2', workflowId);
}

/** A replica that differs is copied again, on the transfer queue (only there is replicateImage registered). */
async function recordVerifyRecopied(env: TestWorkflowEnvironment, save: Save): Promise<void> {
  const replicated: string[] = [];
  const onQueue = (version: string, replica: string) => `${version} ${replica} on ${Context.current().info.taskQueue}`;
  const control = staleReplicaControl('north-replica', replicated, onQueue);
  const workflowId = `verify:all:${randomUUID().slice(0, 8)}`;
  const queue = await runWorker(env, control, async (taskQueue) => {
    await env.client.workflow.execute('VerifyReplicas', { args: [{}], taskQueue, workflowId });
    return transferTaskQueueOf(taskQueue);
  });
  if (replicated.join() !== `2.0.0 north-replica on ${queue}`)
    throw new Error(`replicated ${replicated.join(', ') || 'nothing'}`);
  await save('verify-recopied-v2', workflowId);
}
