import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A transparent HTTP proxy in front of a real service that counts staged-block uploads (PUT ?comp=block)
 * and can slow every request down, so a test can see exactly what a worker sent.
 */
export interface CountingProxy {
  port: number;
  blockPuts: number;
  blockBytes: number;
  /** Bytes of blob content served to GETs (downloads). */
  getBytes: number;
  delayMs: number;
  /** While true, new requests wait here unanswered (a transfer held mid-flight); set false to let them through. */
  held: boolean;
  close(): Promise<void>;
}

export async function startCountingProxy(targetPort: number, delayMs = 0): Promise<CountingProxy> {
  const state = { blockPuts: 0, blockBytes: 0, getBytes: 0, delayMs, held: false };
  let waiting: (() => void)[] = [];
  const server = http.createServer((req, res) => {
    const isBlockPut = req.method === 'PUT' && /[?&]comp=block(&|$)/.test(req.url ?? '');
    const forward = () => {
      const upstream = http.request(
        { host: '127.0.0.1', port: targetPort, method: req.method, path: req.url, headers: req.headers },
        (up) => {
          if (isBlockPut && (up.statusCode ?? 500) < 300) {
            state.blockPuts++;
            state.blockBytes += Number(req.headers['content-length'] ?? 0);
          }
          if (req.method === 'GET') up.on('data', (chunk: Buffer) => (state.getBytes += chunk.length));
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
        },
      );
      upstream.on('error', () => res.destroy());
      req.pipe(upstream);
    };
    const send = () => (state.delayMs > 0 ? setTimeout(forward, state.delayMs) : forward());
    if (state.held) waiting.push(send);
    else send();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    get blockPuts() {
      return state.blockPuts;
    },
    get blockBytes() {
      return state.blockBytes;
    },
    get getBytes() {
      return state.getBytes;
    },
    get delayMs() {
      return state.delayMs;
    },
    set delayMs(v: number) {
      state.delayMs = v;
    },
    get held() {
      return state.held;
    },
    set held(v: boolean) {
      state.held = v;
      if (v) return;
      const release = waiting;
      waiting = [];
      for (const send of release) send();
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
