import { VmhubError } from '../../errors';
import type { ContentLibraryTarget, LibraryPlacement } from './content-library';

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
  /** `vmhub sddc list`'s TARGET column. */
  label: string;
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
