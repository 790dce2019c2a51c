import http from 'node:http';
import type net from 'node:net';
import { pairFigure, pairs, type PairFigure } from './measure';
import { freeLoopbackPort } from '../../src/engine/free-port';

/** What metrics and traces cost: a publish on a worker with both on, against the same on a worker with both off. */
export type TelemetryFigure = PairFigure & { scrapes: number; spanRequests: number; spanBytes: number };

/** An OTLP/HTTP receiver that only counts: what a collector costs the worker is the sending, not the storing. */
async function otlpSink(): Promise<{ url: string; requests: number; bytes: number; close(): Promise<void> }> {
  const sink = {
    url: '',
    requests: 0,
    bytes: 0,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
  const server = http.createServer((req, res) => {
    req.on('data', (chunk: Buffer) => (sink.bytes += chunk.length));
    req.on('end', () => {
      if (req.url === '/v1/traces') sink.requests++;
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  sink.url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  return sink;
}

/**
 * Publishes of the same image size, alternating a worker with metrics served (and scraped every five
 * seconds, as a busy Prometheus would) and traces sent to an OTLP receiver, with a worker that has neither.
 * The ratio is off-seconds over on-seconds: 1.0 means free.
 */
export async function telemetryFigure(
  ctx: {
    /** A worker started with this extra environment; `publish` runs one image on it and says its seconds and CPU. */
    startWorker(
      name: string,
      env: NodeJS.ProcessEnv,
    ): Promise<{ publish(image: string): Promise<{ seconds: number; cpu: number }>; stop(): Promise<void> }>;
    /** The plain worker's publish, as the publish figure runs it. */
    plain(image: string): Promise<{ seconds: number; cpu: number }>;
  },
  sizeBytes: number,
): Promise<TelemetryFigure> {
  const sink = await otlpSink();
  const metricsPort = await freeLoopbackPort();
  const observed = await ctx.startWorker('telemetry', {
    VMHUB_METRICS_ADDRESS: `127.0.0.1:${metricsPort}`,
    OTEL_EXPORTER_OTLP_ENDPOINT: sink.url,
  });
  let scrapes = 0;
  // Bounded, as Prometheus bounds its scrapes: a worker that stops answering must not hold the bench.
  const scrape = () =>
    fetch(`http://127.0.0.1:${metricsPort}/metrics`, { signal: AbortSignal.timeout(10_000) })
      .then((r) => r.text())
      .then(
        () => void scrapes++,
        () => undefined,
      );
  const scraper = setInterval(() => void scrape(), 5000);
  try {
    // The plain worker has published already: one unmeasured publish warms this one up the same way.
    await observed.publish('bench-telemetry-warm');
    let on = 0;
    let off = 0;
    const runs = await pairs(
      'telemetry',
      () => observed.publish(`bench-telemetry-on-${on++}`),
      () => ctx.plain(`bench-telemetry-off-${off++}`),
    );
    await scrape();
    clearInterval(scraper);
    // The worker sends its last spans as it stops: counted after.
    await observed.stop();
    return { ...pairFigure(runs, sizeBytes), scrapes, spanRequests: sink.requests, spanBytes: sink.bytes };
  } finally {
    clearInterval(scraper);
    await observed.stop();
    await sink.close();
  }
}
