import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';

export const ROOT = path.resolve(__dirname, '..', '..');
export const VMHUB = path.join(ROOT, 'bin', 'vmhub.js');

export interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/** The vmhub CLI as an operator runs it, from the checkout: its exit code and what it printed, whatever the code. */
export function runVmhub(args: string[], env: NodeJS.ProcessEnv): Promise<Ran> {
  return promisify(execFile)(process.execPath, [VMHUB, ...args], { env, cwd: ROOT, maxBuffer: 16 * 2 ** 20 }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );
}
