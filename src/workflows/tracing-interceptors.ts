/**
 * Workflow interceptors for traces: not a workflow. Built into every workflow bundle (the worker's and
 * `npm run build:bundle`'s), so they are there whether or not a worker traces; they act only for a run
 * started with a trace context (the `_tracer-data` header a traced client or a traced parent sends), so a
 * run nobody traces costs a header lookup, and its history has no header it did not have before. A
 * traced run's workflow, activity and child spans leave the sandbox through the `exporter` sink.
 * Headers are not part of what a replay compares, so a traced run replays on an untraced worker and
 * the other way around (test/observability/tracing.test.ts).
 */
import type {
  Next,
  WorkflowInboundCallsInterceptor,
  WorkflowInterceptors,
  WorkflowInternalsInterceptor,
  WorkflowOutboundCallsInterceptor,
} from '@temporalio/workflow';
import { TRACE_HEADER } from '@temporalio/interceptors-opentelemetry/lib/instrumentation';
import {
  OpenTelemetryInboundInterceptor,
  OpenTelemetryInternalsInterceptor,
  OpenTelemetryOutboundInterceptor,
} from '@temporalio/interceptors-opentelemetry/lib/workflow';

interface Traced {
  inbound: OpenTelemetryInboundInterceptor;
  outbound: OpenTelemetryOutboundInterceptor;
  internals: OpenTelemetryInternalsInterceptor;
}

type Interceptor = WorkflowInboundCallsInterceptor | WorkflowOutboundCallsInterceptor | WorkflowInternalsInterceptor;
type Method = (input: unknown, next: (input: unknown) => unknown) => unknown;

/** Each of `methods` calls the traced interceptor's when the run is traced, else goes straight on. */
function gated<T extends Interceptor>(methods: ReadonlyArray<keyof T & string>, traced: () => T | undefined): T {
  const entries = methods.map((name) => {
    const method: Method = (input, next) => {
      const target = traced() as Record<string, Method | undefined> | undefined;
      const own = target?.[name];
      return own ? own.call(target, input, next) : next(input);
    };
    return [name, method] as const;
  });
  return Object.fromEntries(entries) as unknown as T;
}

export const interceptors = (): WorkflowInterceptors => {
  let traced: Traced | undefined;
  const inbound = gated<WorkflowInboundCallsInterceptor>(
    ['handleSignal', 'handleUpdate', 'validateUpdate', 'handleQuery'],
    () => traced?.inbound,
  );
  // The run's start decides: made here, the sandbox's tracer exists only in a worker that runs a traced run.
  inbound.execute = (input, next: Next<WorkflowInboundCallsInterceptor, 'execute'>) => {
    if (input.headers[TRACE_HEADER] === undefined) return next(input);
    traced = {
      inbound: new OpenTelemetryInboundInterceptor(),
      outbound: new OpenTelemetryOutboundInterceptor(),
      internals: new OpenTelemetryInternalsInterceptor(),
    };
    return traced.inbound.execute(input, next);
  };
  return {
    inbound: [inbound],
    outbound: [
      gated<WorkflowOutboundCallsInterceptor>(
        [
          'scheduleActivity',
          'scheduleLocalActivity',
          'startChildWorkflowExecution',
          'continueAsNew',
          'signalWorkflow',
          'startNexusOperation',
          'getLogAttributes',
          'getMetricTags',
        ],
        () => traced?.outbound,
      ),
    ],
    internals: [gated<WorkflowInternalsInterceptor>(['dispose'], () => traced?.internals)],
  };
};
