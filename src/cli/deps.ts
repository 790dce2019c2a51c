import type { Client } from '@temporalio/client';
import type { Catalog } from '../catalog/catalog';
import type { Config } from '../config';
import type { BlockStores } from '../storage/block-store';
import type { CliIo } from './output';

/** What a CLI command's `run` may use: the configuration, the services (each connected on first use) and its output. */
export interface CliDeps {
  config: Config;
  temporal(): Promise<Client>;
  catalog(): Promise<Catalog>;
  /** The topology's block stores, for commands that read a blob's block list (`diff`); absent, they say they cannot. */
  storage?(): BlockStores;
  /** Where output goes; the process's stdout and stderr when absent. */
  io?: CliIo;
}
