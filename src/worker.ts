import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { createActivities, type ActivityDeps } from './activities';
import { Catalog } from './catalog/catalog';
import { installLogging } from './logging';
import { loadConfig, type Config } from './config';
import { StorageClients } from './storage/clients';
import { connectWorker } from './temporal';
import { loadTopology } from './topology/topology';

/**
 * Worker entry points: `control` polls the control-plane queue (`vm-images`); `agent <sddc>` polls one
 * SDDC's own queue. VMHUB_WORKFLOW_BUNDLE names a prebuilt workflow bundle (tests build it once).
 */
export function workflowSource(): Pick<WorkerOptions, 'workflowBundle' | 'workflowsPath'> {
  const bundle = process.env.VMHUB_WORKFLOW_BUNDLE;
  return bundle ? { workflowBundle: { codePath: bundle } } : { workflowsPath: require.resolve('./workflows') };
}

export async function openDeps(config: Config): Promise<ActivityDeps> {
  const storage = new StorageClients(loadTopology(config.topologyPath));
  const catalog = await Catalog.connect(config.mongodbUri);
  return { storage, catalog, config };
}

export async function createControlWorker(connection: NativeConnection, deps: ActivityDeps): Promise<Worker> {
  return Worker.create({
    connection,
    namespace: deps.config.temporal.namespace,
    taskQueue: deps.config.taskQueue,
    ...workflowSource(),
    activities: createActivities(deps),
    maxConcurrentActivityTaskExecutions: 16,
  });
}

async function main(): Promise<void> {
  const [role] = process.argv.slice(2);
  installLogging();
  const config = loadConfig();
  if (role !== 'control') throw new Error(`unknown worker role "${role ?? ''}": use "control" or "agent <sddc>"`);
  const deps = await openDeps(config);
  const connection = await connectWorker(config.temporal);
  try {
    const worker = await createControlWorker(connection, deps);
    await worker.run();
  } finally {
    await connection.close();
    await deps.catalog.close();
  }
}

if (require.main === module) {
  main().catch((err: Error) => {
    console.error(`vmhub worker: ${err.message}`);
    process.exit(1);
  });
}
