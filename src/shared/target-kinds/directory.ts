import type { TargetKind } from './kind';

/** A directory of the SDDC agent's datastore: the agent downloads the image there. */
export interface DirectoryTarget {
  kind: 'directory';
}

export interface DirectoryPlacement {
  kind: 'directory';
  /** The verified file on the agent's datastore. */
  path: string;
}

export const directory: TargetKind<DirectoryTarget, DirectoryPlacement> = {
  kind: 'directory',
  parse: () => ({ kind: 'directory' }),
  options: [],
  label: () => 'directory',
  describe: () => "a directory of its agent's datastore",
  addNote: () => '',
  library: () => undefined,
  placement: (row) => (row.path === undefined ? undefined : { kind: 'directory', path: row.path }),
  describePlacement: (p) => p.path,
};
