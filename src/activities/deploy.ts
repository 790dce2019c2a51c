import { activityInfo } from '@temporalio/activity';
import type { DeployInput, DeployResultRow } from '../shared/deploy-input';
import type { SddcSelection } from '../shared/names';
import { agentPollers, agentPollersByQueue } from '../deploy/agent-liveness';
import type { AgentPollers } from '../shared/agent-pollers';
import {
  checkSddcs,
  markSourceFailures,
  planDeployment,
  planFleet,
  type DeploymentPlan,
  type DeploymentTarget,
  type FleetPlan,
} from '../deploy/resolve-deploy';
import type { RunRef } from '../catalog/image-records';
import { holdDeployLease } from '../deploy/deploy-lease';
import { VmhubError } from '../shared/errors';
import { withFailures } from '../shared/failures';
import type { SourceFailure } from './agent';
import type { PublishDeps } from './publish';
import { metrics } from '../observability/metrics';

export type { DeploymentPlan, DeploymentTarget, FleetPlan };

/** Control-plane side of DeployToSDDCs: resolve the input against the catalog, and record what happened. */
export function createDeployActivities({ storage, catalog, temporal }: PublishDeps) {
  /** A retiring version is being removed: a copy made now could land after the retire listed the SDDCs. */
  async function refuseRetiring(image: string, version: string): Promise<void> {
    const record = await catalog.versions.get(image, version);
    if (record?.status === 'retired' || record?.status === 'retiring') {
      throw new VmhubError('ImageRetired', `${image}@${version} is ${record.status}; deploy another version`);
    }
  }

  return {
    /**
     * Agents that polled an SDDC's long or quick task queue within the last five minutes: none means a
     * download would only wait. `byQueue` answers per queue, so the workflow knows whether the agent
     * serves the quick queue; without it, the sum, as runs that began before the quick queue expect.
     * Given the version, fails with ImageRetired once a retire has claimed it: its blobs are going.
     */
    async agentsPolling(input: {
      taskQueue: string;
      image?: string;
      version?: string;
      byQueue?: boolean;
    }): Promise<number | AgentPollers> {
      return withFailures(async () => {
        if (input.image !== undefined && input.version !== undefined) await refuseRetiring(input.image, input.version);
        const pollers = await agentPollers(temporal, input.taskQueue);
        return input.byQueue ? pollers : pollers.long + pollers.quick;
      });
    },

    /** agentsPolling by queue for all of a batch's SDDCs in one activity: a hundred SDDCs, one check. */
    async agentsPollingEach(input: {
      taskQueues: string[];
      image?: string;
      version?: string;
    }): Promise<Record<string, AgentPollers>> {
      return withFailures(async () => {
        if (input.image !== undefined && input.version !== undefined) await refuseRetiring(input.image, input.version);
        return agentPollersByQueue(temporal, input.taskQueues);
      });
    },

    /** Fails with UnknownSddc unless every name is registered: checked before a publish uploads anything. */
    async checkSddcs(selection: SddcSelection): Promise<void> {
      return withFailures(() => checkSddcs(catalog, selection));
    },

    /** The version and the SDDCs' names in batches, for a fanned-out deploy; all-or-nothing, also those without an agent. */
    async planFleet(input: DeployInput): Promise<FleetPlan> {
      return withFailures(() => planFleet(catalog, temporal, input));
    },

    /** Leases the version for this deploy before any agent downloads it: a retire is refused while the lease is held. */
    async holdDeployLease(input: { image: string; version: string; run: RunRef }): Promise<void> {
      return withFailures(() => holdDeployLease(catalog, input));
    },

    /** Gives the lease back when the deploy ends, however it ends. */
    async releaseDeployLease(input: { workflowId: string }): Promise<void> {
      await catalog.deployLeases.release(input.workflowId);
    },

    async planDeployment(input: DeployInput): Promise<DeploymentPlan> {
      return withFailures(() => planDeployment(catalog, storage.topology, input));
    },

    /** Records the row; a channel item the row says the agent filled is recorded as the SDDC's item of that channel. */
    async recordDeployment(input: { image: string; version: string; row: DeployResultRow }): Promise<void> {
      const { row } = input;
      const run = activityInfo().workflowExecution;
      if (row.channelItem) {
        await catalog.channels.recordItem({
          image: input.image,
          channel: row.channelItem.channel,
          sddc: row.sddc,
          version: input.version,
          placement: row.channelItem.placement,
          bytesCopied: row.channelItem.bytesCopied,
          bytesFetched: row.bytesFetched ?? 0,
          run,
        });
      }
      await catalog.deployments.record({
        image: input.image,
        version: input.version,
        sddc: row.sddc,
        status: row.status,
        source: row.source ?? undefined,
        path: row.path,
        bytes: row.bytes,
        bytesFetched: row.bytesFetched,
        bytesReusedLocally: row.bytesReusedLocally,
        target: row.target,
        instantiated: row.instantiated,
        gate: row.gate,
        error: row.reason,
        run,
      });
      // Counted once recorded: an attempt whose write failed, and is retried, does not count the row twice.
      metrics.deployments.inc({ outcome: row.status });
      if (row.gate) metrics.rolloutGates.inc({ outcome: row.gate.passed ? 'passed' : 'failed' });
    },

    /** Marks the replicas an agent found missing, stale or wrong; the primary is never marked. */
    async markSourceFailures(input: { image: string; version: string; failures: SourceFailure[] }): Promise<void> {
      await markSourceFailures(catalog, storage.topology, input);
    },
  };
}
