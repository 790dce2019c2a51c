import path from 'node:path';
import { spawnWorker as spawn, type WorkerProcess } from '../../src/dev-services/worker-process';

export type { WorkerProcess };

/** A worker process for a test, logging to test-output/workers/, where a failing test's story can be read. */
export function spawnWorker(args: string[], env: NodeJS.ProcessEnv): WorkerProcess {
  const logFile = path.resolve(__dirname, '../../test-output/workers', `${args.join('-')}-${Date.now()}.log`);
  return spawn(args, { VMHUB_LOG_LEVEL: 'WARN', ...env }, logFile);
}

export async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
