import { activityInfo } from '@temporalio/activity';
import type { ImageVersionRecord } from '../catalog/image-records';
import type { SddcRecord } from '../catalog/sddc-records';
import { batchesOf, type SddcBatch } from '../deploy/batches';
import type { Resources } from '../images/ovf/metadata';
import { capacityShortfall, resourcesOf, sourceOrder, type SourceCandidate } from '../deploy/placement';
import type { DeployInput, DeployResultRow } from '../deploy/input';
import { VmhubError } from '../errors';
import { withFailures } from '../failures';
import { assertDeployable } from '../lifecycle/deprecation';
import { dataCentersByDistance } from '../topology/topology';
import type { ImageToDeploy, SourceFailure } from './agent';
import type { PublishDeps } from './publish';

export interface DeploymentTarget {
  sddc: Pick<SddcRecord, 'name' | 'dataCenter' | 'taskQueue' | 'target'>;
  /** Why the version does not fit this SDDC, when it does not. */
  shortfall?: string;
  sources: SourceCandidate[];
}

export interface DeploymentPlan extends ImageToDeploy {
  targets: DeploymentTarget[];
  /** What the catalog says the image needs: an instantiate check compares the VM with it. */
  resources?: Resources;
}

/** What the parent of a fanned-out deploy plans with. */
export interface FleetPlan {
  image: string;
  version: string;
  sizeBytes: number;
  batches: SddcBatch[];
}

/** A busy agent (every slot downloading) stops polling for a while: five minutes is still alive. */
export const AGENT_ALIVE_MS = 5 * 60_000;

/** Control-plane side of DeployToSDDCs: resolve the input against the catalog, and record what happened. */
export function createDeployActivities({ storage, catalog, temporal }: PublishDeps) {
  /** The available version and the registered SDDCs a deploy input names; UnknownSddc or UnknownImage otherwise. */
  async function resolve(input: DeployInput): Promise<{ record: ImageVersionRecord & { sha256: string }; sddcs: SddcRecord[] }> {
    const registered = await catalog.sddcs.list();
    let sddcs: SddcRecord[];
    if (input.sddcs === 'all') {
      if (registered.length === 0) throw new VmhubError('UnknownSddc', 'no SDDC is registered; add one with `vmhub sddc add`');
      sddcs = registered;
    } else {
      const byName = new Map(registered.map((s) => [s.name, s]));
      const unknown = input.sddcs.filter((n) => !byName.has(n));
      if (unknown.length > 0)
        throw new VmhubError(
          'UnknownSddc',
          `unknown SDDC ${unknown.join(', ')}; registered: ${registered.map((s) => s.name).join(', ') || 'none'}`,
        );
      sddcs = input.sddcs.map((n) => byName.get(n)!);
    }
    const record = await catalog.versions.resolve(input.image, input.version);
    if (record) assertDeployable(record, new Date(), input.force);
    if (!record || record.status !== 'available' || !record.sha256) {
      throw new VmhubError('UnknownImage', `${input.image}@${input.version} is not an available version in the catalog`);
    }
    return { record: { ...record, sha256: record.sha256 }, sddcs };
  }

  return {
    /**
     * Agents that polled an SDDC's task queue within the last five minutes: none means a download would
     * only wait. Given the version, fails with ImageRetired once a retire has claimed it: its blobs are going.
     */
    async agentsPolling(input: { taskQueue: string; image?: string; version?: string }): Promise<number> {
      return withFailures(async () => {
        if (input.image !== undefined && input.version !== undefined) {
          const record = await catalog.versions.get(input.image, input.version);
          // A retiring version is being removed: a copy made now could land after the retire listed the SDDCs.
          if (record?.status === 'retired' || record?.status === 'retiring') {
            throw new VmhubError('ImageRetired', `${input.image}@${input.version} is ${record.status}; deploy another version`);
          }
        }
        return temporal.recentPollers(input.taskQueue, 'activity', AGENT_ALIVE_MS);
      });
    },

    /** Fails with UnknownSddc unless every name is registered: checked before a publish uploads anything. */
    async checkSddcs(names: string[]): Promise<void> {
      return withFailures(async () => {
        const registered = new Set((await catalog.sddcs.list()).map((s) => s.name));
        const unknown = names.filter((n) => !registered.has(n));
        if (unknown.length > 0) throw new VmhubError('UnknownSddc', `unknown SDDC ${unknown.join(', ')}`);
      });
    },

    /**
     * What a fanned-out deploy needs to start its batches: the version and the SDDCs' names grouped into
     * batches, never their sources or placements, so the result stays small for any fleet.
     */
    async planFleet(input: DeployInput): Promise<FleetPlan> {
      return withFailures(async () => {
        const { record, sddcs } = await resolve(input);
        return { image: record.image, version: record.version, sizeBytes: record.sizeBytes, batches: batchesOf(sddcs) };
      });
    },

    async planDeployment(input: DeployInput): Promise<DeploymentPlan> {
      return withFailures(async () => {
        const { record, sddcs } = await resolve(input);
        const resources = resourcesOf(record);
        return {
          image: record.image,
          version: record.version,
          format: record.format,
          sha256: record.sha256,
          sizeBytes: record.sizeBytes,
          blob: record.location.blob,
          resources,
          targets: sddcs.map((s) => ({
            sddc: { name: s.name, dataCenter: s.dataCenter, taskQueue: s.taskQueue, target: s.target },
            shortfall: capacityShortfall(resources, s.capacity),
            sources: sourceOrder(
              storage.topology.storage,
              record.replicas,
              dataCentersByDistance(storage.topology, s.dataCenter),
            ),
          })),
        };
      });
    },

    async recordDeployment(input: { image: string; version: string; row: DeployResultRow }): Promise<void> {
      const { row } = input;
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
        error: row.reason,
        run: activityInfo().workflowExecution,
      });
    },

    /** Marks the replicas an agent found missing, stale or wrong; the primary is never marked. */
    async markSourceFailures(input: { image: string; version: string; failures: SourceFailure[] }): Promise<void> {
      for (const f of input.failures) {
        const location = storage.topology.storage.find((s) => s.id === f.location);
        // An unreachable replica may answer again in a minute: that is no verdict on its bytes.
        if (location?.role !== 'replica' || f.status === 'unreachable') continue;
        await catalog.versions.setReplica(input.image, input.version, {
          location: f.location,
          status: f.status,
          reason: f.reason,
        });
      }
    },
  };
}
