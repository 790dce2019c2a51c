import { randomUUID } from 'node:crypto';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Activities } from '../src/activities';
import type { AgentActivities } from '../src/activities/agent';
import type { ContentLibraryActivities } from '../src/activities/content-library';
import type { LibraryStreamActivities } from '../src/activities/library-stream';
import type { DeploymentPlan } from '../src/activities/deploy';
import type { DescriptorFacts, PreflightActivities } from '../src/activities/preflight';
import type { DeployResult, DeployResultRow } from '../src/shared/deploy-input';
import type { ContentLibraryTarget, LibraryPlacement } from '../src/shared/target-kinds/kind';
import {
  fleetPlanOf,
  location,
  plan as blocks,
  runWorker,
  startTestEnvironment,
  transferUntilCancelled,
} from './harness/mock-activities';

/**
 * DeployToSDDCs's content library paths on the time-skipping test server, with mocked activities: what
 * runs on the agent, in which order, and how each outcome becomes a result row.
 */
let env: TestWorkflowEnvironment;
beforeAll(async () => {
  env = await startTestEnvironment();
}, 120_000);
afterAll(() => env?.teardown());

const library = (name: string): ContentLibraryTarget => ({
  kind: 'content-library',
  vcenter: `https://vc-${name}.example.com/`,
  library: 'vmhub',
});

const placement = (name: string): LibraryPlacement => ({
  kind: 'content-library',
  vcenter: `https://vc-${name}.example.com/`,
  library: 'vmhub',
  itemId: `item-${name}`,
  itemName: 'app-1.0.0',
});

function deployPlan(
  agentQueue: string,
  names: string[],
  format: 'ova' | 'iso' = 'ova',
  descriptor?: DescriptorFacts,
): DeploymentPlan {
  return {
    ...(descriptor ? { descriptor } : {}),
    image: 'app',
    version: '1.0.0',
    format,
    sha256: 'a'.repeat(64),
    sizeBytes: blocks.sizeBytes,
    blob: location.blob,
    resources: { cpus: 4, memoryMiB: 8192, diskBytes: 2 ** 34 },
    targets: names.map((name) => ({
      sddc: { name, dataCenter: 'dc-east', taskQueue: agentQueue, target: library(name) },
      sources: [{ location: 'east-primary', role: 'primary' as const, dataCenter: 'dc-east' }],
    })),
  };
}

/** Runs a deploy of app@1.0.0 to the named content-library SDDCs, all served by one mocked agent; the calls it makes are logged. */
async function deployWith(
  names: string[],
  agent: Partial<AgentActivities & ContentLibraryActivities & LibraryStreamActivities & PreflightActivities>,
  options: {
    instantiate?: boolean;
    format?: 'ova' | 'iso';
    descriptor?: DescriptorFacts;
    during?: (handle: WorkflowHandle) => Promise<void>;
  } = {},
) {
  const rows: DeployResultRow[] = [];
  const agentQueue = `sddc-${randomUUID()}`;
  const control: Partial<Activities> = {
    planFleet: async () => fleetPlanOf(deployPlan(agentQueue, names, options.format, options.descriptor)),
    planDeployment: async () => deployPlan(agentQueue, names, options.format, options.descriptor),
    agentsPolling: async () => 1,
    recordDeployment: async ({ row }) => {
      rows.push(row);
    },
    markSourceFailures: async () => undefined,
    holdDeployLease: async () => undefined,
    releaseDeployLease: async () => undefined,
  };
  const outcome = await runWorker(
    env,
    control,
    async (taskQueue) => {
      const handle = await env.client.workflow.start('DeployToSDDCs', {
        args: [{ image: 'app', version: '1.0.0', sddcs: names, instantiate: options.instantiate }],
        taskQueue,
        workflowId: randomUUID(),
      });
      await options.during?.(handle);
      return handle.result().then(
        (r) => r as DeployResult,
        (e: unknown) => e,
      );
    },
    // The agent worker takes the mocks of both activity families, as a real agent registers both.
    { taskQueue: agentQueue, activities: agent as Partial<AgentActivities> },
  );
  return { outcome, rows };
}

const downloaded = {
  status: 'deployed' as const,
  source: 'east-primary',
  bytes: blocks.sizeBytes,
  bytesFetched: blocks.sizeBytes,
  bytesReusedLocally: 0,
  bytesResumed: 0,
  sourceFailures: [],
};

/** What an agent's streamed import answers for an SDDC. */
const streamed = (sddc: string) => ({ ...downloaded, target: placement(sddc), bytesSent: blocks.sizeBytes });

describe('DeployToSDDCs into content libraries', () => {
  it('looks for the item, then downloads and streams it into the library in one activity; an item already there needs neither', async () => {
    const calls: string[] = [];
    const { outcome } = await deployWith(['east-1', 'east-2'], {
      findLibraryItem: async ({ sddc }) => {
        calls.push(`find ${sddc}`);
        return sddc === 'east-1' ? { state: 'present', target: placement(sddc) } : { state: 'absent' };
      },
      streamToLibrary: async ({ sddc, target }) => {
        calls.push(`stream ${sddc} into ${target.library}`);
        return streamed(sddc);
      },
    });
    const rows = Object.fromEntries((outcome as DeployResult).results.map((r) => [r.sddc, r]));
    expect(rows['east-1']).toEqual({
      sddc: 'east-1',
      dataCenter: 'dc-east',
      status: 'already-present',
      source: null,
      target: placement('east-1'),
    });
    expect(rows['east-2']).toEqual({
      sddc: 'east-2',
      dataCenter: 'dc-east',
      status: 'deployed',
      source: 'east-primary',
      bytes: blocks.sizeBytes,
      bytesFetched: blocks.sizeBytes,
      bytesReusedLocally: 0,
      target: placement('east-2'),
    });
    expect(calls.filter((c) => c.includes('east-1'))).toEqual(['find east-1']);
    expect(calls.filter((c) => c.includes('east-2'))).toEqual(['find east-2', 'stream east-2 into vmhub']);
  });

  it('a VersionConflict in one library fails that SDDC only, and the run ends DeployIncomplete with every row', async () => {
    let downloads = 0;
    const { outcome, rows } = await deployWith(['east-1', 'east-2'], {
      findLibraryItem: async ({ sddc }) => {
        if (sddc === 'east-1')
          throw ApplicationFailure.nonRetryable('library vmhub already holds app-1.0.0 with SHA-256 ffff', 'VersionConflict');
        return { state: 'absent' };
      },
      streamToLibrary: async ({ sddc }) => {
        downloads++;
        return streamed(sddc);
      },
    });
    expect(outcome).toBeInstanceOf(WorkflowFailedError);
    const failure = (outcome as WorkflowFailedError).cause as ApplicationFailure;
    expect(failure.type).toBe('DeployIncomplete');
    const byName = Object.fromEntries((failure.details![0] as DeployResult).results.map((r) => [r.sddc, r]));
    expect(byName['east-1']).toMatchObject({ status: 'failed', reason: expect.stringMatching(/^VersionConflict: /) });
    expect(byName['east-2']).toMatchObject({ status: 'deployed' });
    expect(downloads).toBe(1);
    expect(rows).toHaveLength(2);
  });

  it('instantiate checks the VM against the catalog’s CPUs and memory, for OVF templates only', async () => {
    const checked: unknown[] = [];
    const agent: Partial<AgentActivities & ContentLibraryActivities> = {
      findLibraryItem: async ({ sddc }) => ({ state: 'present', target: placement(sddc) }),
      instantiateFromLibrary: async ({ placement: p, expected }) => {
        checked.push({ item: p.itemId, expected });
        return { vm: 'vm-42', cpus: 4, memoryMiB: 8192, removed: true };
      },
    };
    const { outcome } = await deployWith(['east-1'], agent, { instantiate: true });
    expect((outcome as DeployResult).results[0].instantiated).toEqual({ vm: 'vm-42', cpus: 4, memoryMiB: 8192, removed: true });
    expect(checked).toEqual([{ item: 'item-east-1', expected: { cpus: 4, memoryMiB: 8192 } }]);
    const iso = await deployWith(['east-1'], agent, { instantiate: true, format: 'iso' });
    expect((iso.outcome as DeployResult).results[0].instantiated).toBeUndefined();
    expect(checked).toHaveLength(1);
  });

  it('a preflight refusal skips the SDDC before any lookup or download; one that passes goes on; an agent without the preflight is not checked', async () => {
    const descriptor: DescriptorFacts = { networks: ['prod'], hardwareVersions: ['vmx-15'], cpus: 4, memoryMiB: 8192 };
    const calls: string[] = [];
    const agent: Partial<AgentActivities & ContentLibraryActivities & PreflightActivities> = {
      preflightLibrary: async ({ sddc, descriptor: asked }) => {
        calls.push(`preflight ${sddc} ${asked.networks.join(',')}`);
        return { refusals: sddc === 'east-1' ? ['network "prod" is missing', 'no host fits'] : [] };
      },
      findLibraryItem: async ({ sddc }) => {
        calls.push(`find ${sddc}`);
        return { state: 'present', target: placement(sddc) };
      },
    };
    const { outcome, rows } = await deployWith(['east-1', 'east-2'], agent, { descriptor });
    const byName = Object.fromEntries((outcome as DeployResult).results.map((r) => [r.sddc, r]));
    expect(byName['east-1']).toEqual({
      sddc: 'east-1',
      dataCenter: 'dc-east',
      status: 'skipped',
      source: null,
      reason: 'preflight: network "prod" is missing; no host fits',
    });
    expect(byName['east-2']).toMatchObject({ status: 'already-present' });
    expect(calls.filter((c) => c.includes('east-1'))).toEqual(['preflight east-1 prod']);
    expect(calls.filter((c) => c.includes('east-2'))).toEqual(['preflight east-2 prod', 'find east-2']);
    expect(rows.map((r) => [r.sddc, r.status]).sort()).toEqual([
      ['east-1', 'skipped'],
      ['east-2', 'already-present'],
    ]);
    // An agent of a build before the preflight has no such activity: the deploy goes on unchecked.
    const { preflightLibrary: _absent, ...older } = agent;
    const unchecked = await deployWith(['east-1'], older, { descriptor });
    expect((unchecked.outcome as DeployResult).results[0]).toMatchObject({ status: 'already-present' });
  });

  it('a cancel during the import waits for the agent to give it up, records the SDDC and ends Cancelled', async () => {
    const log: string[] = [];
    const { outcome, rows } = await deployWith(
      ['east-1'],
      {
        findLibraryItem: async () => ({ state: 'absent' }),
        streamToLibrary: transferUntilCancelled(log, 'import'),
      },
      {
        during: async (handle) => {
          while (!log.includes('import started')) await new Promise((r) => setTimeout(r, 20));
          await handle.cancel();
        },
      },
    );
    expect((outcome as WorkflowFailedError).cause).toBeInstanceOf(CancelledFailure);
    expect(log).toEqual(['import started', 'import stopped']);
    expect(rows).toMatchObject([{ sddc: 'east-1', status: 'failed', reason: expect.stringMatching(/^cancelled/) }]);
  });

  it('a cancel whose import ends as a timeout (a dead or hung agent) still has the half item removed, and the row says so', async () => {
    const log: string[] = [];
    let entered!: () => void;
    const importing = new Promise<void>((resolve) => (entered = resolve));
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const { outcome, rows } = await deployWith(
      ['east-1'],
      {
        findLibraryItem: async () => ({ state: 'absent' }),
        // An agent that never beats hears no cancel: its import ends as a timeout would, after the cancel.
        streamToLibrary: async () => {
          entered();
          await gate;
          throw ApplicationFailure.nonRetryable('activity Heartbeat timeout', 'TimeoutLike');
        },
        discardDownload: async (task) => {
          log.push(`discarded ${task.image}@${task.version}`);
          return { removed: true };
        },
        removeLibraryItem: async (task) => {
          log.push(`removed ${task.image}@${task.version}`);
          return { removed: null };
        },
      },
      {
        during: async (handle) => {
          await importing;
          await handle.cancel();
          // The import ends only once the cancel has reached it in the batch, as a dead agent's would time out then.
          const batch = env.client.workflow.getHandle(`${handle.workflowId}:1-dc-east`);
          const cancelRequested = temporal.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_CANCEL_REQUESTED;
          while ((await batch.describe()).raw.pendingActivities?.[0]?.state !== cancelRequested) {
            await new Promise((r) => setTimeout(r, 20));
          }
          release();
        },
      },
    );
    expect((outcome as WorkflowFailedError).cause).toBeInstanceOf(CancelledFailure);
    expect(log).toEqual(['discarded app@1.0.0', 'removed app@1.0.0']);
    expect(rows).toMatchObject([
      {
        sddc: 'east-1',
        status: 'failed',
        reason: 'cancelled: the agent stopped the import and removed the half-imported library item',
      },
    ]);
  });
});
