import fs from 'node:fs';
import { Client, Connection, type ConnectionOptions } from '@temporalio/client';
import { isOfChain } from './run-chain';
import { temporal } from '@temporalio/proto';
import type { NativeConnection } from '@temporalio/worker';
import type { TemporalConfig } from '../config';
import { clientInterceptors } from '../observability/temporal-tracing';

/** Connection options shared by the client and the workers: address, TLS/mTLS and API key. */
function connectionOptions(config: TemporalConfig): ConnectionOptions & { apiKey?: string } {
  const { tls } = config;
  return {
    address: config.address,
    apiKey: config.apiKey,
    tls: tls
      ? {
          serverNameOverride: tls.serverName,
          serverRootCACertificate: tls.serverRootCaCertPath ? fs.readFileSync(tls.serverRootCaCertPath) : undefined,
          clientCertPair:
            tls.clientCertPath && tls.clientKeyPath
              ? { crt: fs.readFileSync(tls.clientCertPath), key: fs.readFileSync(tls.clientKeyPath) }
              : undefined,
        }
      : undefined,
  };
}

/** `connectTimeoutMs`: how long to wait for the server before failing (the SDK's default is 10 s). */
export async function connectClient(config: TemporalConfig, options: { connectTimeoutMs?: number } = {}): Promise<Client> {
  const connection = await Connection.connect({ ...connectionOptions(config), connectTimeout: options.connectTimeoutMs });
  return new Client({ connection, namespace: config.namespace, interceptors: { workflow: clientInterceptors() } });
}

export function connectWorker(config: TemporalConfig): Promise<NativeConnection> {
  // Loaded here: the CLI reaches this module for its client, and the worker SDK (with its bundler) would
  // double what `vmhub --help` loads.
  const worker = require('@temporalio/worker') as typeof import('@temporalio/worker');
  return worker.NativeConnection.connect(connectionOptions(config));
}

/** What the control plane asks Temporal about other work: whether a run has closed, and who polls a queue. */
export interface TemporalView {
  /** Whether the owner a claim names (a workflow ID and the run, or the first run of its chain) has stopped. */
  isClosed(run: { workflowId: string; runId: string }): Promise<boolean>;
  /** Workers that polled the task queue within the last `withinMs`. */
  recentPollers(taskQueue: string, kind: 'workflow' | 'activity', withinMs?: number): Promise<number>;
  /** Workers that polled the task queue within each of `windowsMs`, from one look at the queue. */
  pollersWithin(taskQueue: string, kind: 'workflow' | 'activity', windowsMs: readonly number[]): Promise<number[]>;
  /** Whether the current run of the workflow ID is running (a reset or continue-as-new keeps the ID). */
  isRunning(workflowId: string): Promise<boolean>;
  /** Whether a later run replaced this one under its workflow ID (a reset, a continue-as-new, a new start). */
  isSuperseded(run: { workflowId: string; runId: string }): Promise<boolean>;
}

export function temporalView(client: Client): TemporalView {
  const pollersWithin: TemporalView['pollersWithin'] = async (taskQueue, kind, windowsMs) => {
    const response = await client.workflowService.describeTaskQueue({
      namespace: client.options.namespace,
      taskQueue: { name: taskQueue },
      taskQueueType:
        kind === 'workflow'
          ? temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW
          : temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
    });
    const polled = (response.pollers ?? []).map((p) => Number(p.lastAccessTime?.seconds ?? 0) * 1000);
    const now = Date.now();
    return windowsMs.map((withinMs) => polled.filter((at) => at >= now - withinMs).length);
  };
  return {
    async isClosed(run) {
      try {
        // An owner names its chain's first run (runOwner), an older claim the run itself: the chain that
        // runs now under the workflow ID is the owner if it is either; a new start of the ID is not.
        const current = await client.workflow.getHandle(run.workflowId).describe();
        return !isOfChain(current, run.runId) || current.status.name !== 'RUNNING';
      } catch (err) {
        // A run the server no longer knows (deleted, or past retention) holds nothing.
        if ((err as Error).name === 'WorkflowNotFoundError') return true;
        throw err;
      }
    },
    async recentPollers(taskQueue, kind, withinMs = 60_000) {
      const [count] = await pollersWithin(taskQueue, kind, [withinMs]);
      return count;
    },
    pollersWithin,
    async isSuperseded(run) {
      try {
        return (await client.workflow.getHandle(run.workflowId).describe()).runId !== run.runId;
      } catch (err) {
        if ((err as Error).name === 'WorkflowNotFoundError') return false;
        throw err;
      }
    },
    async isRunning(workflowId) {
      try {
        return (await client.workflow.getHandle(workflowId).describe()).status.name === 'RUNNING';
      } catch (err) {
        if ((err as Error).name === 'WorkflowNotFoundError') return false;
        throw err;
      }
    },
  };
}
