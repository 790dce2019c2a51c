/** The vmhub admin CLI: every command is a module in src/cli/, put together by src/cli/program.ts. */
import { startTracing } from '../observability/tracing';
import { main as runProgram } from './program';

/** The CLI as bin/vmhub.js runs it: traced when OTEL_EXPORTER_OTLP_ENDPOINT is set, its spans sent before it exits. */
export async function main(argv: string[]): Promise<void> {
  const tracing = startTracing('vmhub-cli');
  try {
    await runProgram(argv);
  } finally {
    await tracing?.shutdown();
  }
}

if (require.main === module) void main(process.argv);
