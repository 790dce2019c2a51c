import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { stopProcessGroup } from '../../src/services/embedded';

/**
 * A real worker process (`src/worker.ts`), so a test can SIGKILL it mid-activity the way a crash would.
 * Its output goes to test-output/workers/, where a failing test's story can be read.
 */
export interface WorkerProcess {
  child: ChildProcess;
  output(): string;
  kill(): Promise<void>;
  stop(): Promise<void>;
}

export function spawnWorker(args: string[], env: NodeJS.ProcessEnv): WorkerProcess {
  const root = path.resolve(__dirname, '../..');
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/worker.ts', ...args], {
    cwd: root,
    env: { ...process.env, VMHUB_LOG_LEVEL: 'WARN', ...env },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const logDir = path.join(root, 'test-output', 'workers');
  fs.mkdirSync(logDir, { recursive: true });
  const log = fs.createWriteStream(path.join(logDir, `${args.join('-')}-${child.pid}.log`));
  const capture = (d: Buffer) => {
    out += d.toString();
    log.write(d);
  };
  child.stdout!.on('data', capture);
  child.stderr!.on('data', capture);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    child,
    output: () => out,
    async kill() {
      process.kill(-child.pid!, 'SIGKILL');
      await exited;
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) await stopProcessGroup(child.pid!);
      await exited;
    },
  };
}

export async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
