import type { NewSddc, SddcChanges, SddcRecord } from '../catalog/sddc-records';
import type { SddcsRepository } from '../catalog/sddcs-repository';
import { VmhubError } from '../shared/errors';
import { validateSddcName } from '../shared/names';
import { validateLabel } from '../shared/rollout-input';
import { agentTaskQueueOf } from '../shared/task-queues';
import type { Capacity, SddcSeed, Topology } from '../topology/topology';

/**
 * The SDDC registry's rules, apart from the catalog's writes: what a new or changed SDDC must satisfy,
 * and the default SDDCs of the topology, registered at every start without overwriting an operator's edits.
 */

/** The data center must be one of the topology's; the message lists them. */
export function checkDataCenter(topology: Topology, dataCenter: string, field = '--dc'): string {
  if (!topology.dataCenters.some((d) => d.id === dataCenter)) {
    const known = topology.dataCenters.map((d) => d.id);
    throw new VmhubError(
      'InvalidInput',
      `${field} ${JSON.stringify(dataCenter)} is not a data center of the topology; use one of ${known.join(', ')}, e.g. ${field} ${known[0]}`,
    );
  }
  return dataCenter;
}

const CAPACITY_FIELDS: Record<keyof Capacity, { option: string; example: string }> = {
  cpus: { option: '--cpus', example: '--cpus 16' },
  memoryMiB: { option: '--memory', example: '--memory 256GiB' },
  diskGiB: { option: '--disk', example: '--disk 4TiB' },
};

/** Every capacity field given is a whole number above zero (CPUs, MiB of memory, GiB of disk). */
export function checkCapacity<C extends Partial<Capacity>>(capacity: C): C {
  for (const [key, value] of Object.entries(capacity) as Array<[keyof Capacity, number | undefined]>) {
    const field = CAPACITY_FIELDS[key];
    if (field === undefined)
      throw new VmhubError('InvalidInput', `capacity has no field ${key}; it has cpus, memoryMiB and diskGiB`);
    if (value !== undefined && (!Number.isInteger(value) || value <= 0)) {
      throw new VmhubError('InvalidInput', `${field.option} must be a whole number above zero, e.g. ${field.example}`);
    }
  }
  return capacity;
}

function checkTaskQueue(taskQueue: string): string {
  if (taskQueue.trim() === '' || taskQueue.length > 200) {
    throw new VmhubError('InvalidInput', '--task-queue must be a name of 1 to 200 characters, e.g. --task-queue sddc-east-3');
  }
  return taskQueue;
}

/** Registers a new SDDC with a valid name and capacity; `SddcExists` when the name is taken (change it with updateSddc). */
export async function createSddc(sddcs: Pick<SddcsRepository, 'create'>, sddc: NewSddc): Promise<SddcRecord> {
  validateSddcName(sddc.name);
  checkCapacity(sddc.capacity);
  return sddcs.create(sddc);
}

/** Changes only the fields given, a capacity given being valid; `UnknownSddc` when it is not registered. */
export async function updateSddc(
  sddcs: Pick<SddcsRepository, 'update'>,
  name: string,
  changes: SddcChanges,
): Promise<SddcRecord> {
  if (changes.capacity) checkCapacity(changes.capacity);
  return sddcs.update(name, changes);
}

/** A new SDDC as `createSddc` stores it, checked against the topology. */
export function checkNewSddc(topology: Topology, sddc: NewSddc): NewSddc {
  validateSddcName(sddc.name);
  checkDataCenter(topology, sddc.dataCenter);
  checkTaskQueue(sddc.taskQueue);
  checkCapacity(sddc.capacity);
  checkLabels(sddc.labels);
  return sddc;
}

function checkLabels(labels: Record<string, string | null> | undefined): void {
  for (const [key, value] of Object.entries(labels ?? {})) validateLabel(key, value ?? '', '--label');
}

/** Changes as `updateSddc` applies them, checked against the topology; at least one is needed. */
export function checkSddcChanges(topology: Topology, changes: SddcChanges): SddcChanges {
  const given = Object.entries(changes).filter(([, v]) => v !== undefined);
  const emptyParts = [changes.capacity, changes.ovfPolicy, changes.labels].filter(
    (p) => p && Object.values(p).every((v) => v === undefined),
  );
  if (given.length === emptyParts.length) {
    throw new VmhubError(
      'InvalidInput',
      'nothing to change: give at least one of --dc, --task-queue, --cpus, --memory, --disk, --vcenter, --network-map, --require-manifest, --require-ovf-cert or --label, e.g. --cpus 16',
    );
  }
  if (changes.dataCenter !== undefined) checkDataCenter(topology, changes.dataCenter);
  if (changes.taskQueue !== undefined) checkTaskQueue(changes.taskQueue);
  if (changes.capacity) checkCapacity(changes.capacity);
  checkLabels(changes.labels);
  return changes;
}

/** The catalog record of one of the topology's default SDDCs. */
export function sddcFromSeed(seed: SddcSeed): NewSddc {
  return {
    name: seed.name,
    dataCenter: seed.dataCenter,
    taskQueue: agentTaskQueueOf(seed.name),
    capacity: seed.capacity,
    target: seed.target,
  };
}

export interface DefaultSddc {
  name: string;
  /** False when an SDDC of that name was registered already (and was left as it is). */
  created: boolean;
  record: SddcRecord;
}

/** Registers the topology's default SDDCs that are missing; those already registered keep their fields. */
export async function registerDefaultSddcs(sddcs: Pick<SddcsRepository, 'ensure'>, topology: Topology): Promise<DefaultSddc[]> {
  const result: DefaultSddc[] = [];
  for (const seed of topology.sddcs) {
    const { record, created } = await sddcs.ensure(sddcFromSeed(seed));
    result.push({ name: seed.name, created, record });
  }
  return result;
}
