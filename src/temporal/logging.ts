import { DefaultLogger, Runtime, type LogLevel } from '@temporalio/worker';
import { configuredLevel, useRuntimeLogger, writeLogLine } from '../observability/log';

let installed = false;

/**
 * Installs the SDK's Runtime with vmhub's logger (src/observability/log.ts): one JSON object per line on
 * stderr, carrying the SDK's context (workflow and activity IDs) and the run's fields
 * (src/observability/activity-log-context.ts, src/workflows/log-context.ts).
 */
export function installLogging(level: LogLevel = configuredLevel()): void {
  if (installed) return;
  installed = true;
  const runtime = Runtime.install({
    logger: new DefaultLogger(level, writeLogLine),
    // The SDK's core would print its own ANSI-coloured lines; forwarded, they are JSON lines like the rest.
    telemetryOptions: { logging: { filter: { core: 'WARN', other: 'ERROR' }, forward: {} } },
  });
  useRuntimeLogger(runtime.logger);
}
