import type { Client } from '@temporalio/client';
import type { Catalog } from '../catalog/catalog';
import type { Config } from '../config';

/** What a CLI command's `run` may use: the configuration and the services, each connected on first use. */
export interface CliDeps {
  config: Config; // from src/config.ts loadConfig()
  temporal(): Promise<Client>; // @temporalio/client Client, connected lazily once
  catalog(): Promise<Catalog>; // src/catalog/catalog.ts, connected lazily once
}
