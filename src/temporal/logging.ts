import { DefaultLogger, Runtime, type LogEntry, type LogLevel } from '@temporalio/worker';

/**
 * Structured logs: one JSON object per line on stderr, carrying the SDK's context (workflow and activity
 * IDs). Errors are reduced to their type and message; nothing else from them is printed.
 */
function plain(value: unknown): unknown {
  if (value instanceof Error) {
    const type = (value as { type?: unknown }).type;
    return { error: value.name, ...(typeof type === 'string' ? { type } : {}), message: value.message };
  }
  return value;
}

export function logLine(entry: Pick<LogEntry, 'level' | 'message' | 'meta'> & { timestampNanos?: bigint }): string {
  const time = entry.timestampNanos ? new Date(Number(entry.timestampNanos / 1_000_000n)) : new Date();
  const meta = Object.fromEntries(Object.entries(entry.meta ?? {}).map(([k, v]) => [k, plain(v)]));
  return JSON.stringify({ time: time.toISOString(), level: entry.level.toLowerCase(), msg: entry.message, ...meta });
}

let installed = false;

/**
 * Installs the SDK runtime with vmhub's logger; with `sdkMetricsAt` (a loopback `host:port`), the SDK's
 * Prometheus exporter listens there for src/observability/metrics-server.ts to merge into its endpoint.
 */
export function installLogging(
  level: LogLevel = (process.env.VMHUB_LOG_LEVEL?.toUpperCase() as LogLevel | undefined) ?? 'INFO',
  sdkMetricsAt?: string,
): void {
  if (installed) return;
  installed = true;
  Runtime.install({
    logger: new DefaultLogger(level, (entry) => process.stderr.write(`${logLine(entry)}\n`)),
    telemetryOptions: {
      // The SDK's core would print its own ANSI-coloured lines; forwarded, they are JSON lines like the rest.
      logging: { filter: { core: 'WARN', other: 'ERROR' }, forward: {} },
      // Seconds and unit suffixes, as Prometheus names go: temporal_activity_schedule_to_start_latency_seconds.
      ...(sdkMetricsAt && {
        metrics: { prometheus: { bindAddress: sdkMetricsAt, useSecondsForDurations: true, unitSuffix: true } },
      }),
    },
  });
}
