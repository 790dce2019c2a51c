import http from 'node:http';
import net from 'node:net';
import { freeLoopbackPort } from '../engine/free-port';
import { collectProcessMetrics, registry } from './metrics';

/**
 * The one scrape target of a worker or agent process: `GET /metrics` on VMHUB_METRICS_ADDRESS answers
 * vmhub's registry (./metrics.ts) followed by the Temporal SDK's metrics, which the SDK runtime's own
 * Prometheus exporter serves on a loopback port of its own (`sdkMetricsAddress`) and this server reads
 * for each scrape. One target per process, one text format; families of the same name are served once.
 */

export interface MetricsAddress {
  host: string;
  port: number;
}

/**
 * VMHUB_METRICS_ADDRESS: `host:port`, `[v6]:port`, or `:port` for 127.0.0.1; unset or empty, no endpoint.
 * Port 0 takes a free port (the bound address is logged).
 */
export function parseMetricsAddress(value: string | undefined): MetricsAddress | undefined {
  const text = value?.trim();
  if (!text) return undefined;
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]*)):(\d{1,5})$/.exec(text);
  const port = Number(match?.[3]);
  if (!match || port > 65535) {
    throw new Error(`VMHUB_METRICS_ADDRESS "${text}" is not host:port: use e.g. 127.0.0.1:9464, or :9464 for 127.0.0.1`);
  }
  return { host: match[1] ?? (match[2] || '127.0.0.1'), port };
}

/** A free loopback address for the SDK's exporter: the SDK binds it itself and cannot report a port 0 back. */
export async function sdkMetricsAddress(): Promise<string> {
  return `127.0.0.1:${await freeLoopbackPort()}`;
}

/** The family a sample or comment line belongs to; histogram and summary series map to theirs by `# TYPE`. */
function familyOfComment(line: string): string | undefined {
  return /^# (?:HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(line)?.[1];
}

/** The families a text declares (`# TYPE` lines). */
export function familiesOf(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split('\n')) if (line.startsWith('# TYPE ')) names.add(familyOfComment(line)!);
  return names;
}

/**
 * vmhub's exposition followed by the SDK's, leaving out any SDK family vmhub's already has (a second
 * HELP/TYPE of one name makes the whole scrape invalid). A family's samples follow its comment lines.
 */
export function mergeExpositions(own: string, sdk: string): string {
  const taken = familiesOf(own);
  const kept: string[] = [];
  let skipping = false;
  for (const line of sdk.split('\n')) {
    if (line === '') continue;
    const family = line.startsWith('#') ? familyOfComment(line) : undefined;
    if (family !== undefined) skipping = taken.has(family);
    else if (line.startsWith('#')) continue;
    if (!skipping) kept.push(line);
  }
  const head = own.endsWith('\n') || own === '' ? own : `${own}\n`;
  return kept.length > 0 ? `${head}${kept.join('\n')}\n` : head;
}

/** The SDK's text, or nothing when its exporter does not answer in time: vmhub's own metrics are served anyway. */
async function sdkText(sdk: string | undefined): Promise<string> {
  if (!sdk) return '';
  try {
    const response = await fetch(`http://${sdk}/metrics`, { signal: AbortSignal.timeout(5_000) });
    return response.ok ? await response.text() : '';
  } catch {
    return '';
  }
}

export interface MetricsEndpoint {
  /** Where it listens, `host:port`, with the port it was given when asked for port 0. */
  address: string;
  close(): Promise<void>;
}

/** Serves `GET /metrics` at `at`, merged with the SDK exporter's at `sdk` (a loopback `host:port`). */
export async function serveMetrics(at: MetricsAddress, sdk?: string): Promise<MetricsEndpoint> {
  collectProcessMetrics();
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' || req.url?.split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('metrics are at GET /metrics\n');
      return;
    }
    Promise.all([registry.metrics(), sdkText(sdk)]).then(
      ([own, theirs]) => res.writeHead(200, { 'content-type': registry.contentType }).end(mergeExpositions(own, theirs)),
      (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${(err as Error).message}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(at.port, at.host, () => resolve());
  });
  // A scrape in progress must not keep a stopping worker alive.
  server.unref();
  const bound = server.address() as net.AddressInfo;
  return {
    address: `${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
