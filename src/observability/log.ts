import type { LogLevel, Logger } from '@temporalio/common';
import { redact, redactText } from './redact';

/**
 * The process's one logger: every line is one JSON object on stderr (`time`, `level`, `msg`, then the
 * fields), redacted (./redact.ts). In a worker the SDK's Runtime is installed with this format
 * (src/temporal/logging.ts), and `log` writes through the Runtime's logger, so the SDK's lines, the core's
 * forwarded lines, workflow and activity lines and vmhub's own share one format, one level and one sink.
 * Fields and how to follow one run: docs/operations.md ("Logs").
 */
const LEVELS: readonly LogLevel[] = ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR'];

/** VMHUB_LOG_LEVEL (trace, debug, info, warn, error); INFO when unset or not one of them. */
export function configuredLevel(env: NodeJS.ProcessEnv = process.env): LogLevel {
  const level = env.VMHUB_LOG_LEVEL?.toUpperCase() as LogLevel | undefined;
  return level && LEVELS.includes(level) ? level : 'INFO';
}

export interface LogRecord {
  level: LogLevel;
  message: string;
  meta?: Record<string, unknown>;
  timestampNanos?: bigint;
}

export function logLine(entry: LogRecord): string {
  const time = entry.timestampNanos ? new Date(Number(entry.timestampNanos / 1_000_000n)) : new Date();
  const meta = redact(entry.meta ?? {}) as object;
  return JSON.stringify({ time: time.toISOString(), level: entry.level.toLowerCase(), msg: redactText(entry.message), ...meta });
}

export function writeLogLine(entry: LogRecord): void {
  process.stderr.write(`${logLine(entry)}\n`);
}

let runtimeLogger: Logger | undefined;

/** From now on `log` writes through the SDK Runtime's logger (installed by src/temporal/logging.ts). */
export function useRuntimeLogger(logger: Logger): void {
  runtimeLogger = logger;
}

/**
 * Writes what the Runtime's logger holds back: it buffers lines for a moment to order them with the
 * core's, so a process about to exit flushes first or loses its last lines.
 */
export function flushLog(): void {
  (runtimeLogger as { flush?: () => void } | undefined)?.flush?.();
}

function emit(level: LogLevel, message: string, meta?: Record<string, unknown>): void {
  if (runtimeLogger) runtimeLogger.log(level, message, meta);
  else if (LEVELS.indexOf(level) >= LEVELS.indexOf(configuredLevel())) writeLogLine({ level, message, meta });
}

/** For code outside workflows and activities (those use the SDK's `log`, which adds the run's fields). */
export const log = {
  debug: (message: string, meta?: Record<string, unknown>) => emit('DEBUG', message, meta),
  info: (message: string, meta?: Record<string, unknown>) => emit('INFO', message, meta),
  warn: (message: string, meta?: Record<string, unknown>) => emit('WARN', message, meta),
  error: (message: string, meta?: Record<string, unknown>) => emit('ERROR', message, meta),
};
