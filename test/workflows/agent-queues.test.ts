import { randomUUID } from 'node:crypto';
import { Context } from '@temporalio/activity';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import type { Activities } from '../../src/activities';
import type { AgentActivities } from '../../src/activities/agent';
import type { ContentLibraryActivities } from '../../src/activities/content-library';
import type { LibraryStreamActivities } from '../../src/activities/library-stream';
import type { AgentLifecycleActivities } from '../../src/activities/lifecycle';
import type { AgentPollers } from '../../src/shared/agent-pollers';
import type { DeployResult } from '../../src/shared/deploy-input';
import type { RetireResult } from '../../src/shared/lifecycle-input';
import { agentQuickTaskQueueOf } from '../../src/shared/task-queues';
import { workflowSource } from '../../src/temporal/worker';
import { retireControl, retirePlan, retireRef } from '../harness/lifecycle-mocks';
import { deployActivities, deployPlan, fleetPlanOf, startTestEnvironment, withBatchAgentCheck } from '../harness/mock-activities';

/**
 * Where a deploy's lookups and discards and a retire's removals run: on the agent's quick queue when the
 * liveness check saw a poller there, else on its long queue, as for an agent of an older build (and a
 * control worker of an older build, whose check answers one number). Both queues are polled here, so
 * only the workflow's choice decides where each activity runs.
 */
let env: TestWorkflowEnvironment;
beforeAll(async () => {
  env = await startTestEnvironment();
}, 120_000);
afterAll(() => env?.teardown());

type AgentMocks = Partial<AgentActivities & ContentLibraryActivities & LibraryStreamActivities & AgentLifecycleActivities>;

/** Wraps each agent activity so that `ran` gets `<name> <queue it ran on>`. */
function logged(agent: AgentMocks, ran: string[]): AgentMocks {
  return Object.fromEntries(
    Object.entries(agent).map(([name, fn]) => [
      name,
      (...args: unknown[]) => {
        ran.push(`${name} ${Context.current().info.taskQueue}`);
        return (fn as (...a: unknown[]) => unknown)(...args);
      },
    ]),
  );
}

/** Runs fn while the control worker and the agent's two workers (long and quick queue) poll. */
async function withAgent<T>(
  control: Partial<Activities>,
  agentQueue: string,
  agent: AgentMocks,
  fn: (taskQueue: string) => Promise<T>,
): Promise<T> {
  const taskQueue = `wf-${randomUUID()}`;
  const options = { connection: env.nativeConnection, maxHeartbeatThrottleInterval: '100 milliseconds' as const };
  const worker = await Worker.create({ ...options, taskQueue, ...workflowSource(), activities: withBatchAgentCheck(control) });
  const long = await Worker.create({ ...options, taskQueue: agentQueue, activities: agent });
  const quick = await Worker.create({ ...options, taskQueue: agentQuickTaskQueueOf(agentQueue), activities: agent });
  return quick.runUntil(() => long.runUntil(() => worker.runUntil(fn(taskQueue))));
}

/** What agentsPolling answers: per queue when asked so, else the sum; a number alone is what an older control worker answers. */
function polling(answer: AgentPollers | number): Activities['agentsPolling'] {
  return async ({ byQueue }) => (typeof answer === 'number' || byQueue ? answer : answer.long + answer.quick);
}

const cases: Array<[string, AgentPollers | number, 'quick' | 'long']> = [
  ['its quick queue has a poller', { long: 0, quick: 1 }, 'quick'],
  ['only its long queue has a poller', { long: 1, quick: 0 }, 'long'],
  ['the control worker answers one number', 2, 'long'],
];

const queueOf = (agentQueue: string, which: 'quick' | 'long') =>
  which === 'quick' ? agentQuickTaskQueueOf(agentQueue) : agentQueue;

describe.each(cases)('when %s', (_, answer, which) => {
  it(`a deploy looks for the library item on the ${which} queue, and downloads and streams into the library on the long queue`, async () => {
    const agentQueue = `sddc-${randomUUID()}`;
    const ran: string[] = [];
    const plan = deployPlan(agentQueue, ['lib-1']);
    const target = {
      kind: 'content-library' as const,
      vcenter: 'https://vc.example.com/',
      library: 'vmhub',
      usernameEnv: 'U',
      passwordEnv: 'P',
    };
    plan.targets[0].sddc.target = target;
    const control: Partial<Activities> = {
      ...deployActivities([], agentQueue, ['lib-1'], 0),
      planFleet: async () => fleetPlanOf(plan),
      planDeployment: async () => plan,
      agentsPolling: polling(answer),
    };
    const agent = logged(
      {
        findLibraryItem: async () => ({ state: 'absent' }),
        streamToLibrary: async () => ({
          status: 'deployed',
          source: 'east-primary',
          bytes: 1,
          bytesFetched: 1,
          bytesResumed: 0,
          sourceFailures: [],
          bytesSent: 1,
          target: { ...target, itemId: 'item-1', itemName: 'app-1.0.0' },
        }),
      },
      ran,
    );
    const result = await withAgent(control, agentQueue, agent, (taskQueue) =>
      env.client.workflow.execute('DeployToSDDCs', {
        args: [{ image: 'app', version: '1.0.0', sddcs: ['lib-1'] }],
        taskQueue,
        workflowId: randomUUID(),
      }),
    );
    expect((result as DeployResult).results.map((r) => r.status)).toEqual(['deployed']);
    expect(ran).toEqual([`findLibraryItem ${queueOf(agentQueue, which)}`, `streamToLibrary ${agentQueue}`]);
  });

  it(`a cancelled deploy has the agent discard its partial download on the ${which} queue`, async () => {
    const agentQueue = `sddc-${randomUUID()}`;
    const ran: string[] = [];
    const control: Partial<Activities> = { ...deployActivities([], agentQueue, ['east-1'], 0), agentsPolling: polling(answer) };
    const agent = logged(
      {
        downloadImage: async () => {
          const ctx = Context.current();
          for (;;) {
            ctx.heartbeat();
            await ctx.sleep(50);
          }
        },
        discardDownload: async () => ({ removed: true }),
      },
      ran,
    );
    const outcome = await withAgent(control, agentQueue, agent, async (taskQueue) => {
      const handle = await env.client.workflow.start('DeployToSDDCs', {
        args: [{ image: 'app', version: '1.0.0', sddcs: ['east-1'] }],
        taskQueue,
        workflowId: randomUUID(),
      });
      while (ran.length === 0) await new Promise((r) => setTimeout(r, 20));
      await handle.cancel();
      return handle.result().then(
        () => 'completed',
        () => 'ended',
      );
    });
    expect(outcome).toBe('ended');
    expect(ran).toEqual([`downloadImage ${agentQueue}`, `discardDownload ${queueOf(agentQueue, which)}`]);
  });

  it(`a retire removes the copy and the library item on the ${which} queue`, async () => {
    const agentQueue = `sddc-${randomUUID()}`;
    const ran: string[] = [];
    const control = { ...retireControl([], agentQueue, async () => retirePlan(agentQueue)), agentsPolling: polling(answer) };
    const agent = logged(
      {
        removeDeployedCopy: async ({ sddc }) => ({ removed: [`/ds/${sddc}/app-1.0.0.iso`] }),
        removeLibraryItem: async () => ({ removed: null }),
      },
      ran,
    );
    const result = await withAgent(control, agentQueue, agent, (taskQueue) =>
      env.client.workflow.execute('RetireImage', { args: [retireRef], taskQueue, workflowId: randomUUID() }),
    );
    expect((result as RetireResult).status).toBe('retired');
    const queue = queueOf(agentQueue, which);
    expect(ran.sort()).toEqual([`removeDeployedCopy ${queue}`, `removeDeployedCopy ${queue}`, `removeLibraryItem ${queue}`]);
  });
});
