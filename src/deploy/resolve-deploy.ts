import type { ImageVersion } from '../shared/image-version';
import type { SourceFailure } from './download-request';
import type { Catalog } from '../catalog/catalog';
import type { ImageVersionRecord } from '../catalog/image-records';
import type { SddcRecord } from '../catalog/sddc-records';
import { VmhubError } from '../shared/errors';
import { ovfPolicyRefusal } from '../shared/ovf-policy';
import type { Resources } from '../images/ovf/metadata';
import { assertDeployable } from '../lifecycle/deprecation';
import { dataCentersByDistance, type Topology } from '../topology/topology';
import { batchesOf, type SddcBatch } from '../shared/batches';
import type { DeployInput } from '../shared/deploy-input';
import { ALL_SDDCS, type SddcSelection } from '../shared/names';
import type { TemporalView } from '../temporal/connection';
import { withoutAgent } from './agent-liveness';
import type { Envelope } from '../provenance/dsse';
import { descriptorFacts, type DescriptorFacts } from '../sddc/preflight';
import { capacityShortfall, resourcesOf, sourceOrder, type SourceCandidate } from './placement';

export interface DeploymentTarget {
  sddc: Pick<SddcRecord, 'name' | 'dataCenter' | 'taskQueue' | 'target'>;
  /** Why the version does not fit this SDDC, when it does not. */
  shortfall?: string;
  /** Why the SDDC's OVF policy refuses the version (`PolicyRefused: …`), when it does: a failed row, nothing imported. */
  refused?: string;
  sources: SourceCandidate[];
}

export interface DeploymentPlan extends ImageVersion {
  blob: string;
  targets: DeploymentTarget[];
  /** What the catalog says the image needs: an instantiate check compares the VM with it. */
  resources?: Resources;
  /** The catalog's copy of its signed provenance: an agent verifies it before it believes any digest in it. */
  envelope?: Envelope;
  /** What a content-library SDDC's preflight checks of an OVA's descriptor; absent for other formats. */
  descriptor?: DescriptorFacts;
}

/** What the parent of a fanned-out deploy plans with. */
export interface FleetPlan {
  image: string;
  version: string;
  sizeBytes: number;
  batches: SddcBatch[];
  /**
   * For an all-or-nothing deploy: the SDDCs the version fits whose agent has not polled lately (the first
   * 100 of them, so the plan stays small), and how many there are. Absent otherwise.
   */
  noAgent?: { count: number; sddcs: Array<Pick<SddcRecord, 'name' | 'taskQueue'>> };
}

/** The SDDCs of an all-or-nothing deploy's `noAgent` the plan names; the rest are counted. */
const NO_AGENT_NAMED = 100;

type DeployCatalog = Pick<Catalog, 'versions' | 'sddcs'>;

/** The available version and the registered SDDCs a deploy input names; UnknownSddc or UnknownImage otherwise. */
async function resolve(
  catalog: DeployCatalog,
  input: DeployInput,
): Promise<{ record: ImageVersionRecord & { sha256: string }; sddcs: SddcRecord[] }> {
  const sddcs = selectSddcs(await catalog.sddcs.list(), input.sddcs);
  const record = await catalog.versions.resolve(input.image, input.version);
  if (record) assertDeployable(record, new Date(), input.force);
  if (!record || record.status !== 'available' || !record.sha256) {
    throw new VmhubError('UnknownImage', `${input.image}@${input.version} is not an available version in the catalog`);
  }
  return { record: { ...record, sha256: record.sha256 }, sddcs };
}

/**
 * What a fanned-out deploy needs to start its batches: the version and the SDDCs' names grouped into
 * batches, never their sources or placements, so the result stays small for any fleet. For an
 * all-or-nothing deploy, also the SDDCs it would need an agent for that have none (an SDDC the version
 * does not fit is skipped, and needs none).
 */
export async function planFleet(
  catalog: DeployCatalog,
  temporal: Pick<TemporalView, 'pollersWithin'>,
  input: DeployInput,
): Promise<FleetPlan> {
  const { record, sddcs } = await resolve(catalog, input);
  const plan: FleetPlan = {
    image: record.image,
    version: record.version,
    sizeBytes: record.sizeBytes,
    batches: batchesOf(sddcs),
  };
  if (!input.allOrNothing) return plan;
  const resources = resourcesOf(record);
  // Only an SDDC the deploy would ask its agent needs one: not one the version does not fit or its policy refuses.
  const fitting = sddcs.filter(
    (s) => capacityShortfall(resources, s.capacity) === undefined && policyRefusal(s, record).refused === undefined,
  );
  const silent = await withoutAgent(temporal, fitting);
  if (silent.length === 0) return plan;
  const named = silent.slice(0, NO_AGENT_NAMED).map((s) => ({ name: s.name, taskQueue: s.taskQueue }));
  return { ...plan, noAgent: { count: silent.length, sddcs: named } };
}

/** The version to deploy, and per SDDC whether it fits and which storage locations to read it from, nearest first. */
export async function planDeployment(catalog: DeployCatalog, topology: Topology, input: DeployInput): Promise<DeploymentPlan> {
  const { record, sddcs } = await resolve(catalog, input);
  const resources = resourcesOf(record);
  const descriptor = descriptorFacts(record.metadata);
  return {
    image: record.image,
    version: record.version,
    format: record.format,
    sha256: record.sha256,
    sizeBytes: record.sizeBytes,
    blob: record.location.blob,
    resources,
    ...(record.provenance?.envelope ? { envelope: record.provenance.envelope } : {}),
    ...(descriptor ? { descriptor } : {}),
    targets: sddcs.map((s) => ({
      sddc: { name: s.name, dataCenter: s.dataCenter, taskQueue: s.taskQueue, target: s.target },
      shortfall: capacityShortfall(resources, s.capacity),
      ...policyRefusal(s, record),
      sources: sourceOrder(topology.storage, record.replicas, dataCentersByDistance(topology, s.dataCenter)),
    })),
  };
}

/** The `refused` of a target whose SDDC's OVF policy the version does not satisfy. */
function policyRefusal(sddc: SddcRecord, record: ImageVersionRecord): { refused?: string } {
  // Judged now, not as at publish: a certificate verified then may have expired since.
  const refusal = ovfPolicyRefusal(sddc.ovfPolicy, record.metadata, new Date());
  return refusal ? { refused: `PolicyRefused: SDDC ${sddc.name} ${refusal}` } : {};
}

/** UnknownSddc for a deploy to "all" while no SDDC is registered. */
function noSddcRegistered(): VmhubError {
  return new VmhubError('UnknownSddc', 'no SDDC is registered; add one with `vmhub sddc add <name> --dc <data-center>`');
}

/** UnknownSddc for names that are not registered, listing those that are. */
function unknownSddcs(unknown: string[], registered: SddcRecord[]): VmhubError {
  return new VmhubError(
    'UnknownSddc',
    `unknown SDDC ${unknown.join(', ')}; registered: ${registered.map((s) => s.name).join(', ') || 'none'}`,
  );
}

/**
 * The registered SDDCs a selection names (every one for "all"); UnknownSddc when it names one that is not
 * (told by `unknownError`), or none is registered.
 */
export function selectSddcs(
  registered: SddcRecord[],
  selection: SddcSelection,
  unknownError: (unknown: string[], registered: SddcRecord[]) => VmhubError = unknownSddcs,
): SddcRecord[] {
  if (selection === ALL_SDDCS) {
    if (registered.length === 0) throw noSddcRegistered();
    return registered;
  }
  const byName = new Map(registered.map((s) => [s.name, s]));
  const unknown = selection.filter((n) => !byName.has(n));
  if (unknown.length > 0) throw unknownError(unknown, registered);
  return selection.map((n) => byName.get(n)!);
}

/** Fails with UnknownSddc unless every name is registered (for "all": unless some SDDC is). */
export async function checkSddcs(catalog: Pick<Catalog, 'sddcs'>, selection: SddcSelection): Promise<void> {
  selectSddcs(await catalog.sddcs.list(), selection);
}

/** Marks the replicas an agent found missing, stale or wrong; the primary is never marked. */
export async function markSourceFailures(
  catalog: Pick<Catalog, 'versions'>,
  topology: Topology,
  input: { image: string; version: string; failures: SourceFailure[] },
): Promise<void> {
  for (const f of input.failures) {
    const location = topology.storage.find((s) => s.id === f.location);
    // An unreachable replica may answer again in a minute: that is no verdict on its bytes.
    if (location?.role !== 'replica' || f.status === 'unreachable') continue;
    await catalog.versions.setReplica(input.image, input.version, { location: f.location, status: f.status, reason: f.reason });
  }
}
