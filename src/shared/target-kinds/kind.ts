import { VmhubError } from '../errors';

/** A vCenter's content library, reached through the vSphere Automation REST API. */
export interface ContentLibraryTarget {
  kind: 'content-library';
  /**
   * The vCenter's base URL, e.g. https://vcenter.example.com/: for display, and checked against the
   * agent's own vCenter; the agent's login and TLS trust are its own.
   */
  vcenter: string;
  /** A local library, created on `datastore` when missing. */
  library: string;
  /** Datastore name for a new library; default the first datastore the vCenter lists. */
  datastore?: string;
  /** Resource pool name for the instantiate check; default the root pool of the first cluster. */
  resourcePool?: string;
  /** Check every deployment by instantiating a VM from the item and removing it again. */
  instantiate?: boolean;
  /**
   * How far a rollout's health gate checks the guest of its VM: absent, the guest must report VMware Tools
   * running; `power-state`, being powered on is enough (src/shared/health-gate.ts).
   */
  guestCheck?: 'power-state';
  /** A descriptor's network → this vCenter's network it stands for, where their names differ. */
  networkMap?: Record<string, string>;
}

/** Where an image landed in a content library: a result row's `target`. */
export interface LibraryPlacement {
  kind: 'content-library';
  vcenter: string;
  library: string;
  itemId: string;
  itemName: string;
}

/** The fields of a deploy's result row (and deployment record) that say where its copy is. */
export interface PlacementFields {
  path?: string;
  target?: LibraryPlacement;
}

/** A `vmhub sddc add`/`update` option of a kind, as commander takes it. */
export interface TargetOption {
  flags: string;
  description: string;
}

/**
 * What vmhub needs to know of one kind of SDDC target (where an SDDC keeps deployed images);
 * src/sddc/target.ts lists them. Plain data and pure functions: the workflow bundle imports the records.
 * `T` is the kind's target, `P` where a deployed copy lives, `O` its CLI options.
 */
export interface TargetKind<T extends { kind: string }, P extends { kind: string }, O = object> {
  kind: T['kind'];
  /** Checks a target of this kind from the topology, the CLI or a task; returns exactly the known fields. */
  parse(fields: Record<string, unknown>, fail: (msg: string) => never): T;
  /** Its own options of `vmhub sddc add` and `update`. */
  options: readonly TargetOption[];
  /** The target the CLI options describe, or undefined when they ask for no target of this kind. */
  fromOptions?(sddc: string, options: O): T | undefined;
  /** `vmhub sddc list`'s TARGET column: the kind, and a setting worth seeing in a list. */
  label(target: T): string;
  /** Where an SDDC of this kind deploys into, for `vmhub sddc show/add/update`. */
  describe(target: T): string;
  /** What `vmhub sddc add` adds after that description. */
  addNote(target: T): string;
  /** The content library a deploy imports into and a retire removes the item from, if there is one. */
  library(target: T): ContentLibraryTarget | undefined;
  /** Where a result row says its copy is, if it is in a place of this kind. */
  placement(row: PlacementFields): P | undefined;
  /** One line saying where a deployed copy is, for people. */
  describePlacement(placement: P): string;
}

export function failer(what: string): (msg: string) => never {
  return (msg) => {
    throw new VmhubError('InvalidInput', `${what}: ${msg}`);
  };
}
