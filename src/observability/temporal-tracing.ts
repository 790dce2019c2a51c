import type { WorkflowClientInterceptor } from '@temporalio/client';
import type { WorkerOptions } from '@temporalio/worker';
import { activeTracing } from './tracing';

/**
 * Temporal's OpenTelemetry interceptors, installed only while the process traces (`startTracing`): the
 * client's start spans and the trace context it sends with a run; each activity's span, parented by the
 * workflow's; the workflow sandbox's spans handed to the process's exporter. The workflow side is
 * src/workflows/tracing-interceptors.ts, in every bundle (src/temporal/interceptors.ts).
 */

/** The client's workflow interceptors: none when the process does not trace. */
export function clientInterceptors(): WorkflowClientInterceptor[] {
  if (!activeTracing()) return [];
  const { OpenTelemetryWorkflowClientInterceptor } =
    require('@temporalio/interceptors-opentelemetry/lib/client') as typeof import('@temporalio/interceptors-opentelemetry/lib/client');
  return [new OpenTelemetryWorkflowClientInterceptor()];
}

/**
 * The sink the workflow interceptors send a traced run's spans to, dropping them: what a worker that does
 * not trace, and a replay, give the workflow code, so that a run a traced client started does not log an
 * unregistered sink at every workflow task.
 */
export function workflowSinks(): NonNullable<WorkerOptions['sinks']> {
  return { exporter: { export: { fn: () => undefined } } };
}

/** A worker's options with the activity interceptors and the workflow span sink, when the process traces. */
export function withTracing(options: WorkerOptions): WorkerOptions {
  const tracing = activeTracing();
  if (!tracing) return options;
  const otel =
    require('@temporalio/interceptors-opentelemetry/lib/worker') as typeof import('@temporalio/interceptors-opentelemetry/lib/worker');
  return {
    ...options,
    interceptors: {
      ...options.interceptors,
      activity: [
        ...(options.interceptors?.activity ?? []),
        (ctx) => ({
          inbound: new otel.OpenTelemetryActivityInboundInterceptor(ctx),
          outbound: new otel.OpenTelemetryActivityOutboundInterceptor(ctx),
        }),
      ],
    },
    sinks: { ...options.sinks, exporter: otel.makeWorkflowExporter(tracing.processor, tracing.resource) },
  };
}
