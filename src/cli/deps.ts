import type { Client } from '@temporalio/client';
import type { Catalog, SddcRecord } from '../catalog/catalog';
import type { Config } from '../config';
import type { CliIo } from './output';

/** What a CLI command's `run` may use: the configuration, the services (each connected on first use) and its output. */
export interface CliDeps {
  config: Config;
  temporal(): Promise<Client>;
  catalog(): Promise<Catalog>;
  /** Where output goes; the process's stdout and stderr when absent. */
  io?: CliIo;
}

/** The SDDC registry as the `sddc` commands use it: create refuses a name taken, update changes the fields given. */
export interface SddcRegistry {
  get(name: string): Promise<SddcRecord | null>;
  create(sddc: Omit<SddcRecord, 'createdAt'>): Promise<SddcRecord>;
  update(name: string, changes: Partial<Omit<SddcRecord, 'name' | 'createdAt'>>): Promise<SddcRecord>;
}
