import fs from 'node:fs';
import path from 'node:path';
import { NativeConnection, Worker, type InjectedSinks, type WorkerOptions } from '@temporalio/worker';
import { createActivities, type ActivityDeps } from '../activities';
import { createAgentActivities } from '../activities/agent';
import { createChannelItemActivities } from '../activities/channel-item';
import { createContentLibraryActivities } from '../activities/content-library';
import { createLibraryStreamActivities } from '../activities/library-stream';
import { createPreflightActivities } from '../activities/preflight';
import { createAgentLifecycleActivities } from '../activities/lifecycle';
import { createHealthGateActivities } from '../activities/health-gate';
import { createDriftActivities } from '../activities/drift';
import { loadTrustedKeys } from '../provenance/keys';
import { validateSddcName } from '../shared/names';
import { agentQuickTaskQueueOf, agentTaskQueueOf } from '../shared/task-queues';
import { Catalog } from '../catalog/catalog';
import { installLogging } from './logging';
import { WORKFLOW_INTERCEPTOR_MODULES, workerInterceptors } from './interceptors';
import { withoutSourcesText } from './workflow-source-map';
import { flushLog, log, writeLogLine } from '../observability/log';
import { loadConfig, PROJECT_ROOT, type Config } from '../config';
import { ensureSchedulesAt } from './schedules';
import { TopologyBlockStores } from '../storage/backends';
import { connectClient, connectWorker, temporalView } from './connection';
import { loadTopology } from '../topology/topology';
import { VmhubError } from '../shared/errors';
import { loadTrustedCas } from '../images/ovf-certificate';
import { metrics, watchReplicas } from '../observability/metrics';
import { parseMetricsAddress, sdkMetricsAddress, serveMetrics } from '../observability/metrics-server';
import type { MetricSinks } from '../workflows/metric-sinks';
import { startTracing } from '../observability/tracing';
import { withTracing, workflowSinks } from '../observability/temporal-tracing';

/** Workflows count into this process's metrics through sinks, called once per event, never on replay. */
const METRIC_SINKS: InjectedSinks<MetricSinks> = {
  vmhubMetrics: { rolloutWaveEnded: { fn: (_info, outcome) => metrics.rolloutWaves.inc({ outcome }) } },
};

/**
 * Worker entry points: `control` polls the control-plane queue (`vm-images`: workflows and bookkeeping)
 * and the transfer queue (`vm-images-transfer`: staging, inspection, commit, replication); with
 * `--only control` or `--only transfer` it polls one of them, so each scales by its own processes.
 * `agent <sddc>` polls one SDDC's own queue and its quick queue (`<queue>-quick`).
 *
 * The workflow code comes from VMHUB_WORKFLOW_BUNDLE when it names a prebuilt bundle (the Docker image,
 * the tests); else from dist/workflow-bundle.js (`npm run build:bundle`) while that file is newer than
 * every .ts file under src/ and package-lock.json, so an edited checkout never runs a stale bundle;
 * else the sources are bundled at start. Every bundle has the same workflow interceptor modules and
 * source map (./workflow-source-map); each comes with the sinks its workflows call (tracing's exporter,
 * vmhub's metrics).
 */
export function workflowSource(
  env: NodeJS.ProcessEnv = process.env,
): Pick<WorkerOptions, 'workflowBundle' | 'workflowsPath' | 'bundlerOptions' | 'interceptors' | 'sinks'> {
  const sinks = { ...METRIC_SINKS, ...workflowSinks() };
  if (env.VMHUB_WORKFLOW_BUNDLE) return { workflowBundle: { codePath: env.VMHUB_WORKFLOW_BUNDLE }, sinks };
  const root = PROJECT_ROOT;
  const prebuilt = path.join(root, 'dist', 'workflow-bundle.js');
  const modified = (file: string) => fs.statSync(file, { throwIfNoEntry: false })?.mtimeMs ?? 0;
  const built = modified(prebuilt);
  if (built > 0) {
    const src = path.join(root, 'src');
    const inputs = fs
      .readdirSync(src, { recursive: true, encoding: 'utf8' })
      .filter((name) => name.endsWith('.ts'))
      .map((name) => path.join(src, name))
      .concat(path.join(root, 'package-lock.json'));
    if (inputs.every((file) => modified(file) <= built)) return { workflowBundle: { codePath: prebuilt }, sinks };
  }
  return {
    workflowsPath: require.resolve('../workflows'),
    bundlerOptions: { webpackConfigHook: withoutSourcesText },
    interceptors: { workflowModules: WORKFLOW_INTERCEPTOR_MODULES },
    sinks,
  };
}

/** The control plane's clients; `close` releases them. */
export async function openDeps(config: Config): Promise<ActivityDeps & { close(): Promise<void> }> {
  const storage = new TopologyBlockStores(loadTopology(config.topologyPath));
  const catalog = await Catalog.connect(config.mongodbUri);
  const client = await connectClient(config.temporal).catch(async (err: unknown) => {
    await catalog.close();
    throw err;
  });
  return {
    storage,
    catalog,
    config,
    temporal: temporalView(client),
    async close() {
      await Promise.all([catalog.close(), client.connection.close()]);
    },
  };
}

/**
 * On SIGTERM or SIGINT the SDK stops polling and gives running activities this long to finish or
 * heartbeat their progress before it cancels them; the next worker resumes from the last heartbeat.
 */
export const SHUTDOWN_GRACE = '30 seconds';

/** A cancel reaches an activity with the reply to its heartbeat: send them often enough that it stops within seconds. */
const HEARTBEAT_THROTTLE = '3 seconds';

export type ControlQueue = 'control' | 'transfer';

/**
 * The control plane's workers: workflows and bookkeeping on the control queue, long transfers on the
 * transfer queue; `only` names one of them. Every activity is registered on both, so a run scheduled
 * before transfers had a queue of their own still finds its activities.
 */
export async function createControlWorkers(
  connection: NativeConnection,
  deps: ActivityDeps,
  only?: ControlQueue,
): Promise<Worker[]> {
  const common: Omit<WorkerOptions, 'taskQueue'> = {
    connection,
    namespace: deps.config.temporal.namespace,
    activities: createActivities(deps),
    maxConcurrentActivityTaskExecutions: 16,
    shutdownGraceTime: SHUTDOWN_GRACE,
    maxHeartbeatThrottleInterval: HEARTBEAT_THROTTLE,
    interceptors: workerInterceptors(),
  };
  const workers: Worker[] = [];
  if (only !== 'transfer') {
    const source = workflowSource();
    workers.push(
      await Worker.create(
        withTracing({ ...common, taskQueue: deps.config.taskQueue, ...source, interceptors: workerInterceptors(source) }),
      ),
    );
  }
  if (only !== 'control') workers.push(await Worker.create(withTracing({ ...common, taskQueue: deps.config.transferTaskQueue })));
  return workers;
}

/** Runs workers until all have stopped; one failing shuts the others down, and its error is thrown. */
export async function runWorkers(workers: Worker[]): Promise<void> {
  const results = await Promise.allSettled(
    workers.map((w) =>
      w.run().catch((err: unknown) => {
        for (const other of workers) if (other !== w && other.getState() === 'RUNNING') other.shutdown();
        throw err;
      }),
    ),
  );
  const failed = results.find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
}

/** What an agent's queue is for: `long` downloads, imports and instantiations; `quick` lookups, preflights, discards and removals. */
export type AgentQueue = 'long' | 'quick';

/** The activities an agent's quick queue serves: each is short, so a few slots stay free while downloads run. */
const QUICK_ACTIVITIES = [
  'findLibraryItem',
  'preflightLibrary',
  'discardDownload',
  'removeDeployedCopy',
  'removeLibraryItem',
  'listDrift',
] as const;

/**
 * One worker of the agent of one SDDC. `long` polls the SDDC's registered task queue and registers every
 * agent activity, so runs that began before the quick queue existed, and workflows that see no quick
 * poller, still find their quick operations there; `quick` polls `<taskQueue>-quick` with its own slots.
 */
export async function createAgentWorker(
  connection: NativeConnection,
  config: Config,
  sddc: string,
  queue: AgentQueue = 'long',
): Promise<Worker> {
  const storage = new TopologyBlockStores(loadTopology(config.topologyPath));
  // Read once at start: a key file that cannot be read stops the agent, rather than every download later.
  const trusted = loadTrustedKeys(config.trustedKeys);
  const all = {
    ...createAgentActivities({ storage, config, sddc, trusted }),
    ...createContentLibraryActivities({ config, sddc, trusted }),
    ...createLibraryStreamActivities({ storage, config, sddc, trusted }),
    ...createChannelItemActivities({ config, sddc, trusted }),
    ...createPreflightActivities({ sddc }),
    ...createAgentLifecycleActivities({ config, sddc }),
    ...createDriftActivities({ config, sddc, trusted }),
    ...createHealthGateActivities({ sddc }),
  };
  const long = agentTaskQueue(sddc);
  return Worker.create(
    withTracing({
      connection,
      namespace: config.temporal.namespace,
      taskQueue: queue === 'long' ? long : agentQuickTaskQueueOf(long),
      activities: queue === 'long' ? all : Object.fromEntries(QUICK_ACTIVITIES.map((name) => [name, all[name]])),
      maxConcurrentActivityTaskExecutions: queue === 'long' ? 4 : 8,
      shutdownGraceTime: SHUTDOWN_GRACE,
      maxHeartbeatThrottleInterval: HEARTBEAT_THROTTLE,
      interceptors: workerInterceptors(),
    }),
  );
}

/** The agent of one SDDC: its long queue's worker and its quick queue's; `runWorkers` runs and drains both. */
export async function createAgentWorkers(connection: NativeConnection, config: Config, sddc: string): Promise<Worker[]> {
  return [await createAgentWorker(connection, config, sddc, 'long'), await createAgentWorker(connection, config, sddc, 'quick')];
}

export function agentTaskQueue(sddc: string, env: NodeJS.ProcessEnv = process.env): string {
  return env.VMHUB_AGENT_TASK_QUEUE ?? agentTaskQueueOf(sddc);
}

/** `control [--only control|transfer]` or `agent <sddc>`; an agent without an SDDC name is told how to give one. */
export function parseWorkerArgs(args: string[]): { role?: string; sddc?: string; only?: ControlQueue } {
  const only = args.indexOf('--only');
  const parsed = only === -1 ? { role: args[0], sddc: args[1] } : parseOnly(args, only);
  if (parsed.role === 'agent' && !parsed.sddc) throw new Error(AGENT_USAGE);
  return parsed;
}

function parseOnly(args: string[], only: number): { role?: string; sddc?: string; only: ControlQueue } {
  const queue = args[only + 1];
  if (queue !== 'control' && queue !== 'transfer') throw new Error(`--only takes "control" or "transfer", got "${queue ?? ''}"`);
  const rest = args.filter((_, i) => i !== only && i !== only + 1);
  return { role: rest[0], sddc: rest[1], only: queue };
}

export const AGENT_USAGE =
  'name the SDDC this agent serves: `npm run agent -- <sddc>`, e.g. `npm run agent -- east-1` (`vmhub sddc list` shows the registered SDDCs)';

/**
 * An agent serves a registered SDDC: a typo would poll a queue no deploy uses. A catalog that cannot be
 * reached within a few seconds does not stop it (agents restart during outages); it is logged.
 */
export async function checkAgentSddc(config: Config, sddc: string): Promise<void> {
  let catalog: Catalog;
  try {
    // Read only: an agent's catalog user may only read the SDDC records.
    catalog = await Catalog.connect(config.mongodbUri, { timeoutMs: 3_000, readOnly: true });
  } catch (err) {
    log.warn('could not check that the SDDC is registered: the catalog is unreachable', { sddc, error: err });
    return;
  }
  try {
    const record = await catalog.sddcs.require(sddc);
    const queue = agentTaskQueue(sddc);
    if (record.taskQueue !== queue) {
      throw new VmhubError(
        'InvalidInput',
        `SDDC ${sddc} is registered with task queue ${record.taskQueue}, but this agent would poll ${queue}: set VMHUB_AGENT_TASK_QUEUE=${record.taskQueue}, or \`vmhub sddc update ${sddc} --task-queue ${queue}\``,
      );
    }
  } finally {
    await catalog.close();
  }
}

async function main(): Promise<void> {
  const { role, sddc, only } = parseWorkerArgs(process.argv.slice(2));
  const metricsAt = parseMetricsAddress(process.env.VMHUB_METRICS_ADDRESS);
  const sdkMetricsAt = metricsAt && (await sdkMetricsAddress());
  installLogging(undefined, sdkMetricsAt);
  if (metricsAt) {
    const { address } = await serveMetrics(metricsAt, sdkMetricsAt);
    // Whatever the log level: with port 0 this line is the only way to learn the port.
    writeLogLine({ level: 'INFO', message: 'metrics served', meta: { url: `http://${address}/metrics` } });
  }
  const tracing = startTracing(role === 'agent' ? 'vmhub-agent' : 'vmhub-control', { sddc: role === 'agent' ? sddc : undefined });
  try {
    await runRole(role, sddc, only);
  } finally {
    // After the workers drained (SIGTERM, SIGINT): the spans of their last tasks are sent before the process ends.
    await tracing?.shutdown();
  }
}

async function runRole(role: string | undefined, sddc: string | undefined, only: ControlQueue | undefined): Promise<void> {
  const config = loadConfig();
  // Checked before connecting anywhere else: a typo, or a trusted CA file that cannot be read, is told at once.
  if (role === 'agent' && sddc) await checkAgentSddc(config, validateSddcName(sddc));
  await loadTrustedCas(config.ovf.trustedCaFile);
  const connection = await connectWorker(config.temporal);
  try {
    if (role === 'control') {
      const deps = await openDeps(config);
      watchReplicas(() => deps.catalog.replicas.countByState());
      try {
        await ensureSchedulesAt(config, true);
        await runWorkers(await createControlWorkers(connection, deps, only));
      } finally {
        await deps.close();
      }
    } else if (role === 'agent' && sddc && !only) {
      await runWorkers(await createAgentWorkers(connection, config, sddc));
    } else {
      throw new Error(
        `unknown worker role "${[role, sddc].filter(Boolean).join(' ')}": use "control [--only control|transfer]" or "agent <sddc>"`,
      );
    }
  } finally {
    await connection.close();
  }
}

if (require.main === module) {
  main().catch((err: Error) => {
    // A JSON line like every other, so a log file stays one JSON document per line.
    log.error('vmhub worker stopped', { error: err });
    flushLog();
    process.exit(1);
  });
}
