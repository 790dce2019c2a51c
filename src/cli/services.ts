import type { Client } from '@temporalio/client';
import type { Catalog } from '../catalog/catalog';
import type { Config } from '../config';
import type { BlockStores } from '../storage/block-store';
import type { CliDeps } from './deps';
import { CliError } from './errors';
import type { CliIo } from './output';

/** A CLI command waits this long for a service before saying it cannot reach it: within 3 s in all, start included. */
export const CONNECT_TIMEOUT_MS = 2500;

const START_HINT = 'start the local services with `npm run services -- start`';

/** A MongoDB URI without its user and password, fit for a message. */
export function redactUri(uri: string): string {
  return uri.replace(/\/\/[^@/]*@/, '//');
}

/*
 * The services' client libraries are loaded on first use, so `--help` and checks that need no service start
 * fast. A plain require: the tsx fallback of bin/vmhub.js hooks require but not a dynamic import().
 */
export const loadTemporal = () => require('../temporal/connection') as typeof import('../temporal/connection');
const loadCatalog = () => require('../catalog/catalog') as typeof import('../catalog/catalog');
const loadMongo = () => require('mongodb') as typeof import('mongodb');
const loadBackends = () => require('../storage/backends') as typeof import('../storage/backends');
const loadTopology = () => require('../topology/topology') as typeof import('../topology/topology');

export async function connectTemporal(config: Config): Promise<Client> {
  const { connectClient } = loadTemporal();
  try {
    return await connectClient(config.temporal, { connectTimeoutMs: CONNECT_TIMEOUT_MS });
  } catch (err) {
    throw new CliError(
      'ServiceUnavailable',
      `cannot reach Temporal at ${config.temporal.address} (${(err as Error).message.split('\n')[0]}); ${START_HINT}, or give --address / TEMPORAL_ADDRESS`,
    );
  }
}

export async function connectCatalog(config: Config): Promise<Catalog> {
  const { MongoClient } = loadMongo();
  const { Catalog } = loadCatalog();
  const client = new MongoClient(config.mongodbUri, {
    serverSelectionTimeoutMS: CONNECT_TIMEOUT_MS,
    connectTimeoutMS: CONNECT_TIMEOUT_MS,
    appName: 'vmhub-cli',
  });
  try {
    await client.connect();
  } catch (err) {
    await client.close().catch(() => undefined);
    throw new CliError(
      'ServiceUnavailable',
      `cannot reach MongoDB at ${redactUri(config.mongodbUri)} (${(err as Error).message.split('\n')[0]}); ${START_HINT}, or set MONGODB_URI`,
    );
  }
  const catalog = new Catalog(client.db(), client);
  // The unique indexes make `sddc add` refuse a duplicate on a catalog no worker has opened yet. A
  // read-only user cannot create them and needs none: its reads go on.
  await catalog.ensureIndexes().catch(() => undefined);
  return catalog;
}

/** The services of a CLI run, each connected on first use; `close` closes those that were. */
export function cliDeps(config: () => Config, io: CliIo): CliDeps & { close(): Promise<void> } {
  let temporal: Promise<Client> | undefined;
  let catalog: Promise<Catalog> | undefined;
  let storage: BlockStores | undefined;
  return {
    get config() {
      return config();
    },
    io,
    temporal: () => (temporal ??= connectTemporal(config())),
    catalog: () => (catalog ??= connectCatalog(config())),
    storage: () => (storage ??= new (loadBackends().TopologyBlockStores)(loadTopology().loadTopology(config().topologyPath))),
    async close() {
      await Promise.allSettled([temporal?.then((c) => c.connection.close()), catalog?.then((c) => c.close())]);
    },
  };
}
