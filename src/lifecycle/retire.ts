import type { ImageVersion, VersionRef } from '../shared/image-version';
import type { Catalog } from '../catalog/catalog';
import type { RunRef } from '../catalog/image-records';
import type { DeploymentRecord } from '../catalog/deployment-records';
import type { SddcRecord } from '../catalog/sddc-records';
import { withoutAgent } from '../deploy/agent-liveness';
import type { Log } from '../engine/liveness';
import { leasedDeploys } from './deploy-leases';
import { VmhubError } from '../shared/errors';
import { validateImageName, validateVersion } from '../shared/names';
import type { SddcTarget } from '../shared/sddc-target';
import type { TemporalView } from '../temporal/connection';
import type { Topology } from '../topology/topology';

/** An SDDC that holds (or may hold) a copy of the version being retired. */
export interface RetireTarget {
  sddc: string;
  taskQueue: string;
  target?: SddcTarget;
}

export type RetirePlan =
  | { state: 'retired' }
  | (ImageVersion & {
      state: 'retiring';
      /** `retiring`: this run took the retire over from a closed run, which may have removed copies already. */
      previous?: 'available' | 'retiring';
      blob: string;
      locations: string[];
      sddcs: RetireTarget[];
    });

export interface RetireDeps {
  catalog: Pick<Catalog, 'versions' | 'sddcs' | 'deployments' | 'deployLeases'>;
  temporal: TemporalView;
  topology: Topology;
}

export function checkRef(ref: VersionRef): void {
  validateImageName(ref.image);
  validateVersion(ref.version);
}

export function notRetirable(ref: VersionRef, status: string | undefined): VmhubError {
  return new VmhubError(
    'UnknownImage',
    `${ref.image}@${ref.version} is ${status ?? 'not in the catalog'}; only an available version can be retired`,
  );
}

/** A registered SDDC that holds (or may hold) a copy of the version, and its deployment record. */
export interface Holder {
  sddc: SddcRecord;
  deployment: DeploymentRecord;
}

/** The registered SDDCs that hold (or may hold) a copy of the version. */
export async function holdersOf(catalog: Pick<Catalog, 'sddcs' | 'deployments'>, ref: VersionRef): Promise<Holder[]> {
  const registered = new Map((await catalog.sddcs.list()).map((s) => [s.name, s]));
  const found: Holder[] = [];
  for (const d of await catalog.deployments.of(ref.image, ref.version)) {
    const sddc = registered.get(d.sddc);
    // A skipped attempt may follow one that left a copy (its origin says so); else it never had one.
    if (d.status === 'removed' || (d.status === 'skipped' && !d.origin) || !sddc) continue;
    found.push({ sddc, deployment: d });
  }
  return found;
}

export function retireTarget({ sddc }: Holder): RetireTarget {
  return { sddc: sddc.name, taskQueue: sddc.taskQueue, target: sddc.target };
}

export function noAgent(ref: VersionRef, silent: RetireTarget[]): VmhubError {
  const named = silent.slice(0, 10);
  const more = silent.length > named.length ? ` and ${silent.length - named.length} more SDDCs` : '';
  return new VmhubError(
    'NoAgent',
    `no agent has polled for ${named.map((t) => `${t.sddc} (task queue ${t.taskQueue})`).join(', ')}${more} in the last five minutes, and ${ref.image}@${ref.version} has a copy there; start ${named.map((t) => `\`npm run agent -- ${t.sddc}\``).join(', ')} and retire again (or, for an SDDC gone for good, \`vmhub sddc remove <sddc>\`)`,
  );
}

export function deployRunning(ref: VersionRef, running: string[]): VmhubError {
  return new VmhubError(
    'DeployRunning',
    `${ref.image}@${ref.version} is being deployed by ${running.join(', ')}; retire it once that has ended`,
  );
}

async function refuseWhileDeploying(deps: RetireDeps, input: VersionRef): Promise<void> {
  const running = await leasedDeploys(deps, input);
  if (running.length > 0) throw deployRunning(input, running);
}

export function retiredBy(ref: VersionRef, owner: RunRef): VmhubError {
  return new VmhubError(
    'VersionConflict',
    `${ref.image}@${ref.version} is being retired by workflow ${owner.workflowId}; wait for it or cancel it`,
  );
}

/**
 * Claims the version for `me`'s retire (status `retiring`: no deploy plans it from now on), unless it is
 * retired already. Refused with VersionConflict while another open run holds the claim (a closed run's
 * claim is taken over); refused, giving back a claim it made, with DeployRunning while a deploy of it
 * runs and with NoAgent while an SDDC holding a copy has no live agent. Returns what to remove.
 */
export async function beginRetire(deps: RetireDeps, input: VersionRef, me: RunRef, log: Log): Promise<RetirePlan> {
  const { catalog, temporal } = deps;
  checkRef(input);
  const { image, version } = input;
  const before = await catalog.versions.get(image, version);
  if (before?.status === 'retired') return { state: 'retired' };
  if (before?.status !== 'available' && before?.status !== 'retiring') throw notRetirable(input, before?.status);
  // Refused before claiming while a deploy runs: a claim, even one given back at once, fails the deploys
  // that meet it (ImageRetired).
  await refuseWhileDeploying(deps, input);
  let claim = await catalog.versions.beginRetire(image, version, me);
  if (claim.state === 'owned') {
    if (claim.owner && !(await temporal.isClosed(claim.owner))) throw retiredBy(input, claim.owner);
    log.info('taking over a retire left by a closed run', { image, version, previous: claim.owner });
    if (!(await catalog.versions.takeOverRetire(image, version, me, claim.owner))) {
      throw new Error(`the retire claim on ${image}@${version} changed while being taken over; retrying`);
    }
    claim = await catalog.versions.beginRetire(image, version, me);
  }
  if (claim.state === 'retired') return { state: 'retired' };
  if (claim.state === 'unavailable') throw notRetirable(input, claim.status);
  if (claim.state !== 'claimed') throw new Error(`${image}@${version} changed while being claimed; retrying`);
  const { record, previous } = claim;
  try {
    // Checked again once claimed: a deploy leases before it reads the version, so it sees the claim or is seen.
    await refuseWhileDeploying(deps, input);
  } catch (err) {
    if (previous === 'available') await catalog.versions.abandonRetire(image, version, me);
    throw err;
  }
  // Listed once claimed: a deploy that records its copy from now on records it failed (retired), so none is missed.
  const sddcs = (await holdersOf(catalog, input)).map(retireTarget);
  const silent = await withoutAgent(temporal, sddcs);
  if (silent.length > 0) {
    if (previous === 'available') await catalog.versions.abandonRetire(image, version, me);
    throw noAgent(input, silent);
  }
  return {
    state: 'retiring',
    previous,
    image,
    version,
    format: record.format,
    sha256: record.sha256 ?? '',
    sizeBytes: record.sizeBytes,
    blob: record.location.blob,
    locations: deps.topology.storage.map((s) => s.id),
    sddcs,
  };
}
