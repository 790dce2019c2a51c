import type { Resource } from '@opentelemetry/resources';
import { settleWithin } from '../engine/settle-within';
import type { SpanExporter, SpanProcessor } from '@opentelemetry/sdk-trace-base';

/**
 * Traces: one tracer provider per process, exporting with OTLP/HTTP to OTEL_EXPORTER_OTLP_ENDPOINT (or
 * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT); the exporter, batching and sampling read the other standard OTEL_*
 * variables themselves. Without an endpoint nothing is installed and the SDK is not even loaded: the
 * spans vmhub makes (`inSpan`) go to the API's no-op tracer. docs/architecture.md, "Traces".
 */

/** The process, as `service.name`: the CLI, a control worker, an SDDC's agent. */
export type VmhubService = 'vmhub-cli' | 'vmhub-control' | 'vmhub-agent';

export interface Tracing {
  readonly resource: Resource;
  /** What the provider's spans go through; the workflow sandbox's spans are handed to it too. */
  readonly processor: SpanProcessor;
  /** Sends the spans still buffered. */
  flush(): Promise<void>;
  /**
   * Sends the spans still buffered and removes the provider. Never fails, and waits at most
   * `SHUTDOWN_WAIT_MS`: spans a collector that is down or slow does not take are dropped, as the process's
   * own outcome (a CLI command done, a worker drained) must not depend on its traces.
   */
  shutdown(): Promise<void>;
}

let current: Tracing | undefined;

const SHUTDOWN_WAIT_MS = 5_000;

/** The process's tracing, when it is on. */
export function activeTracing(): Tracing | undefined {
  return current;
}

/** Whether the environment asks for traces: an OTLP endpoint, and the SDK not disabled. */
export function tracingRequested(env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return false;
  return Boolean(env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || env.OTEL_EXPORTER_OTLP_ENDPOINT);
}

/**
 * Installs the process's tracer provider when the environment asks for traces, or when `exporter` is given
 * (the tests' in-memory exporter); once per process. `sddc` names an agent's SDDC (`vmhub.sddc`).
 * OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override and add to the resource, as the specification says.
 */
export function startTracing(
  service: VmhubService,
  options: { sddc?: string; exporter?: SpanExporter } = {},
): Tracing | undefined {
  if (current) return current;
  if (!options.exporter && !tracingRequested()) return undefined;
  // Loaded only now: a process without tracing never loads the SDK.
  const sdk = require('@opentelemetry/sdk-trace-base') as typeof import('@opentelemetry/sdk-trace-base');
  const resources = require('@opentelemetry/resources') as typeof import('@opentelemetry/resources');
  const { AsyncLocalStorageContextManager } =
    require('@opentelemetry/context-async-hooks') as typeof import('@opentelemetry/context-async-hooks');
  const api = require('@opentelemetry/api') as typeof import('@opentelemetry/api');
  const exporter = options.exporter ?? otlpExporter();
  const resource = new resources.Resource({
    'service.name': service,
    ...(options.sddc ? { 'vmhub.sddc': options.sddc } : {}),
  }).merge(resources.envDetectorSync.detect());
  const processor = new sdk.BatchSpanProcessor(exporter);
  const provider = new sdk.BasicTracerProvider({ resource, spanProcessors: [processor] });
  // Without a context manager a span started after an `await` would lose its parent.
  provider.register({ contextManager: new AsyncLocalStorageContextManager().enable() });
  const tracing: Tracing = {
    resource,
    processor,
    async flush() {
      await provider.forceFlush();
    },
    async shutdown() {
      if (current !== tracing) return;
      current = undefined;
      await settleWithin(provider.shutdown(), SHUTDOWN_WAIT_MS);
      api.trace.disable();
      api.context.disable();
      api.propagation.disable();
    },
  };
  current = tracing;
  return tracing;
}

function otlpExporter(): SpanExporter {
  const { OTLPTraceExporter } =
    require('@opentelemetry/exporter-trace-otlp-http') as typeof import('@opentelemetry/exporter-trace-otlp-http');
  return new OTLPTraceExporter();
}
