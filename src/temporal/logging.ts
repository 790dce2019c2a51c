import { DefaultLogger, Runtime, type LogLevel } from '@temporalio/worker';
import { configuredLevel, useRuntimeLogger, writeLogLine } from '../observability/log';

let installed = false;

/**
 * Installs the SDK's Runtime with vmhub's logger (src/observability/log.ts): one JSON object per line on
 * stderr, carrying the SDK's context (workflow and activity IDs) and the run's fields
 * (src/observability/activity-log-context.ts, src/workflows/log-context.ts). With `sdkMetricsAt` (a loopback
 * `host:port`), the SDK's Prometheus exporter listens there for src/observability/metrics-server.ts to merge
 * into its endpoint.
 */
export function installLogging(level: LogLevel = configuredLevel(), sdkMetricsAt?: string): void {
  if (installed) return;
  installed = true;
  const runtime = Runtime.install({
    logger: new DefaultLogger(level, writeLogLine),
    telemetryOptions: {
      // The SDK's core would print its own ANSI-coloured lines; forwarded, they are JSON lines like the rest.
      logging: { filter: { core: 'WARN', other: 'ERROR' }, forward: {} },
      // Seconds and unit suffixes, as Prometheus names go: temporal_activity_schedule_to_start_latency_seconds.
      ...(sdkMetricsAt && {
        metrics: { prometheus: { bindAddress: sdkMetricsAt, useSecondsForDurations: true, unitSuffix: true } },
      }),
    },
  });
  useRuntimeLogger(runtime.logger);
}
