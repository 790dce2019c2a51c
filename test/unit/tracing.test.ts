import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { trace } from '@opentelemetry/api';
import { inSpan } from '../../src/observability/spans';
import { clientInterceptors, withTracing } from '../../src/observability/temporal-tracing';
import { activeTracing, startTracing, tracingRequested } from '../../src/observability/tracing';

const OTEL_VARIABLES = ['OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', 'OTEL_SDK_DISABLED'];

describe('tracing on and off', () => {
  const saved = Object.fromEntries(OTEL_VARIABLES.map((name) => [name, process.env[name]]));
  beforeEach(() => {
    for (const name of OTEL_VARIABLES) delete process.env[name];
  });
  afterAll(() => {
    for (const [name, value] of Object.entries(saved)) if (value !== undefined) process.env[name] = value;
  });

  it.each([
    [{}, false],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' }, true],
    [{ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://127.0.0.1:4318/v1/traces' }, true],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318', OTEL_SDK_DISABLED: 'true' }, false],
  ])('%j asks for traces: %s', (env, requested) => {
    expect(tracingRequested(env)).toBe(requested);
  });

  it('installs nothing without an endpoint: no provider, no interceptors, spans that record nothing', async () => {
    expect(startTracing('vmhub-cli')).toBeUndefined();
    expect(activeTracing()).toBeUndefined();
    expect(clientInterceptors()).toEqual([]);
    const options = withTracing({ taskQueue: 'q' });
    expect(options).toEqual({ taskQueue: 'q' });
    const recording = await inSpan('vmhub.stage', { image: 'a' }, async (span) => span.isRecording());
    expect(recording).toBe(false);
    expect(trace.getTracer('any').startSpan('x').isRecording()).toBe(false);
  });

  it('sends spans as OTLP to the endpoint, with the service and SDDC, and flushes them on shutdown', async () => {
    const received: Array<{ method?: string; url?: string; body: Buffer }> = [];
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        received.push({ method: req.method, url: req.url, body: Buffer.concat(chunks) });
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      process.env.OTEL_EXPORTER_OTLP_ENDPOINT = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const tracing = startTracing('vmhub-agent', { sddc: 'east-1' });
      expect(tracing).toBeDefined();
      expect(activeTracing()).toBe(tracing);
      expect(clientInterceptors()).toHaveLength(1);
      const options = withTracing({ taskQueue: 'q' });
      expect(options.interceptors?.activity).toHaveLength(1);
      expect(options.sinks?.exporter).toBeDefined();
      await inSpan('vmhub.download', { image: 'ubuntu', version: '1.2.3', bytes: 42 }, async (span) => {
        expect(span.isRecording()).toBe(true);
      });
      await tracing!.shutdown();
      expect(activeTracing()).toBeUndefined();
      expect(received.map((r) => [r.method, r.url])).toEqual([['POST', '/v1/traces']]);
      const body = received[0].body;
      expect(body.length).toBeGreaterThan(0);
      for (const text of ['vmhub.download', 'vmhub-agent', 'east-1', 'ubuntu']) expect(body.includes(text)).toBe(true);
    } finally {
      server.close();
    }
  });

  it('shuts down without failing when the collector is unreachable: spans it cannot take are dropped', async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    process.env.OTEL_EXPORTER_OTLP_ENDPOINT = `http://127.0.0.1:${port}`;
    const tracing = startTracing('vmhub-cli');
    await inSpan('vmhub.commit', { image: 'ubuntu' }, async (span) => expect(span.isRecording()).toBe(true));
    await expect(tracing!.shutdown()).resolves.toBeUndefined();
    expect(activeTracing()).toBeUndefined();
  });
});
