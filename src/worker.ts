import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { createActivities, type ActivityDeps } from './activities';
import { createAgentActivities } from './activities/agent';
import { validateSddcName } from './names';
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

/** The agent of one SDDC: only the download activities, on the SDDC's own task queue. */
export async function createAgentWorker(connection: NativeConnection, config: Config, sddc: string): Promise<Worker> {
  const storage = new StorageClients(loadTopology(config.topologyPath));
  return Worker.create({
    connection,
    namespace: config.temporal.namespace,
    taskQueue: agentTaskQueue(sddc),
    activities: createAgentActivities({ storage, config }),
    maxConcurrentActivityTaskExecutions: 4,
  });
}

export function agentTaskQueue(sddc: string, env: NodeJS.ProcessEnv = process.env): string {
  return env.VMHUB_AGENT_TASK_QUEUE ?? `sddc-${sddc}`;
}

async function main(): Promise<void> {
  const [role, sddc] = process.argv.slice(2);
  installLogging();
  const config = loadConfig();
  const connection = await connectWorker(config.temporal);
  try {
    if (role === 'control') {
      const deps = await openDeps(config);
      try {
        await (await createControlWorker(connection, deps)).run();
      } finally {
        await deps.catalog.close();
      }
    } else if (role === 'agent' && sddc) {
      await (await createAgentWorker(connection, config, validateSddcName(sddc))).run();
    } else {
      throw new Error(`unknown worker role "${[role, sddc].filter(Boolean).join(' ')}": use "control" or "agent <sddc>"`);
    }
  } finally {
    await connection.close();
  }
}

if (require.main === module) {
  main().catch((err: Error) => {
    console.error(`vmhub worker: ${err.message}`);
    process.exit(1);
  });
}
