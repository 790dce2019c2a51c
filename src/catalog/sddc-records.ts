import type { OvfPolicy } from '../shared/ovf-policy';
import type { SddcTarget } from '../shared/sddc-target';
import type { Capacity } from '../topology/topology';

/** A registered SDDC as the catalog keeps it. Plain data: no driver. */
export interface SddcRecord {
  name: string;
  dataCenter: string;
  taskQueue: string;
  capacity: Capacity;
  /** Where its agent puts images; a record without one deploys into a directory. */
  target?: SddcTarget;
  /** What it demands of an OVF image before a deploy may reach its agent; absent demands nothing. */
  ovfPolicy?: OvfPolicy;
  /** The operator's labels (`ring=canary`): what a rollout's waves select SDDCs by. */
  labels?: Record<string, string>;
  createdAt: Date;
  /** Set by the last update; absent on a record never changed since it was created. */
  updatedAt?: Date;
}

export type NewSddc = Omit<SddcRecord, 'createdAt' | 'updatedAt'>;

/** The fields an update may change; capacity field by field, a target as a whole. */
export interface SddcChanges {
  dataCenter?: string;
  taskQueue?: string;
  capacity?: Partial<Capacity>;
  target?: SddcTarget;
  /** Each demand given is set or cleared on its own. */
  ovfPolicy?: OvfPolicy;
  /** Each label given is set, or cleared when null. */
  labels?: Record<string, string | null>;
}
