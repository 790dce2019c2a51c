import { SpanStatusCode, trace, type Span } from '@opentelemetry/api';

/**
 * vmhub's own spans, for the steps inside an activity. Through the API only: without a tracer provider
 * (tracing off) the tracer is the API's no-op one and a span costs a function call.
 */
const tracer = trace.getTracer('vmhub');

/**
 * What a step's span may say. A closed set, so that no URL (a SAS token rides in its query), credential
 * or session ID can become an attribute.
 */
export interface StepFacts {
  image?: string;
  version?: string;
  sddc?: string;
  location?: string;
  bytes?: number;
  /** A vCenter call: its method and path, session IDs and item IDs replaced (`redactPath`). */
  operation?: string;
}

function attributesOf(facts: StepFacts): Record<string, string | number> {
  const attributes: Record<string, string | number> = {};
  for (const [key, value] of Object.entries(facts)) if (value !== undefined) attributes[`vmhub.${key}`] = value;
  return attributes;
}

/**
 * Runs `fn` in a span named `name`, the current span (an activity's, or another step's) its parent. A
 * failure marks the span with the error's type only: messages may quote what a secret was part of.
 */
export async function inSpan<T>(name: string, facts: StepFacts, fn: (span: Span) => Promise<T>): Promise<T> {
  return tracer.startActiveSpan(name, { attributes: attributesOf(facts) }, async (span) => {
    try {
      return await fn(span);
    } catch (err) {
      const type = (err as { type?: unknown }).type;
      span.setStatus({ code: SpanStatusCode.ERROR, message: typeof type === 'string' ? type : (err as Error).name });
      throw err;
    } finally {
      span.end();
    }
  });
}

/** Adds a fact learnt during the step (the bytes moved) to its span. */
export function noteFacts(span: Span, facts: StepFacts): void {
  span.setAttributes(attributesOf(facts));
}
