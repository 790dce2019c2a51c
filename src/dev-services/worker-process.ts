import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { PROJECT_ROOT } from '../config';
import { stopProcessGroup } from './embedded';

/**
 * A vmhub worker (`src/temporal/worker.ts control` or `agent <sddc>`) in a process of its own, its output written
 * to a log file. The demo runs its workers this way; tests do too, so they can SIGKILL one mid-activity.
 */
export interface WorkerProcess {
  child: ChildProcess;
  logFile: string;
  kill(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * The V8 flags a worker process runs with; the Dockerfile and the `worker` and `agent` npm scripts give
 * the same. Block bytes live outside the JavaScript heap and little else a worker allocates lives long,
 * so semi-spaces of 4 MiB instead of V8's 16 cost nothing measurable and keep the worker's resident
 * memory 20 to 30 MiB lower (`npm run bench`).
 */
export const WORKER_NODE_FLAGS = ['--max-semi-space-size=4'];

export function spawnWorker(args: string[], env: NodeJS.ProcessEnv, logFile: string): WorkerProcess {
  fs.mkdirSync(path.dirname(logFile), { recursive: true });
  const log = fs.openSync(logFile, 'a');
  const child = spawn(
    process.execPath,
    [...WORKER_NODE_FLAGS, '--import', 'tsx', path.join('src', 'temporal', 'worker.ts'), ...args],
    {
      cwd: PROJECT_ROOT,
      env: { ...process.env, ...env },
      detached: true,
      stdio: ['ignore', log, log],
    },
  );
  fs.closeSync(log);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const running = () => child.exitCode === null && child.signalCode === null;
  return {
    child,
    logFile,
    async kill() {
      if (running()) process.kill(-child.pid!, 'SIGKILL');
      await exited;
    },
    async stop() {
      if (running()) await stopProcessGroup(child.pid!);
      await exited;
    },
  };
}
