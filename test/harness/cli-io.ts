import type { CliIo } from '../../src/cli/output';
import { main } from '../../src/cli/program';

/** Where a CLI command run in the test's own process writes: kept, to be looked at. */
export function capture(): CliIo & { stdout: string; stderr: string } {
  const io = {
    stdout: '',
    stderr: '',
    out: (t: string) => void (io.stdout += t),
    err: (t: string) => void (io.stderr += t),
    progress: process.stderr,
    tty: false,
  };
  return io;
}

/** `vmhub <args>` run in this process, as an operator runs it: what it printed, and its exit code (reset after). */
export async function runCli(...args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  const io = capture();
  await main(['node', 'vmhub', ...args], io);
  const code = Number(process.exitCode ?? 0);
  process.exitCode = 0;
  return { stdout: io.stdout, stderr: io.stderr, code };
}
