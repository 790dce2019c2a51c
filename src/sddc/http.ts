import http, { type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { Duplex, Readable } from 'node:stream';
import tls from 'node:tls';
import type { VcenterTrust } from './agent-vcenter';

/**
 * HTTP to one vCenter. Every request goes to the vCenter's own origin, also when the server hands out
 * an upload or download URI naming another host (a load balancer's inner name, vcsim's listen
 * address): the session header is only ever sent where the login went.
 */
export interface HttpRequest {
  method: string;
  /** Path and query, or a URI the vCenter returned, of which only the path and query are used. */
  path: string;
  headers?: Record<string, string>;
  /** A buffer, or a factory of the stream to send (with `contentLength`). */
  body?: Buffer | (() => Readable);
  contentLength?: number;
  signal?: AbortSignal;
  /** The socket may be idle this long before the request fails. */
  idleTimeoutMs?: number;
}

export interface HttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** A vCenter that could not be reached or hung up: transient, worth another attempt. */
export class VcenterUnreachable extends Error {
  override name = 'VcenterUnreachable';
}

/** Responses are JSON or SOAP documents of a few kilobytes; a larger one is not a vCenter talking. */
const MAX_RESPONSE_BYTES = 32 * 1024 * 1024;
const IDLE_TIMEOUT_MS = 120_000;

export class VcenterHttp {
  readonly origin: string;
  private readonly agent: http.Agent;
  private readonly transport: typeof http | typeof https;

  constructor(
    base: string,
    /** How the vCenter's certificate is trusted: also by the thread of an upload (./upload-on-thread). */
    readonly trust: VcenterTrust,
  ) {
    const url = new URL(base);
    this.origin = url.origin;
    this.transport = url.protocol === 'https:' ? https : http;
    this.agent = url.protocol === 'https:' ? httpsAgent(trust) : new http.Agent({ keepAlive: true });
  }

  /** The path and query of a path or URI, to be sent to this vCenter. */
  pathOf(pathOrUri: string): string {
    const url = new URL(pathOrUri, this.origin);
    return `${url.pathname}${url.search}`;
  }

  async request(req: HttpRequest): Promise<HttpResponse> {
    const res = await this.open(req);
    const chunks: Buffer[] = [];
    let size = 0;
    try {
      for await (const chunk of res as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > MAX_RESPONSE_BYTES) break;
        chunks.push(chunk);
      }
    } catch (err) {
      if (req.signal?.aborted) throw req.signal.reason;
      throw unreachable(this.origin, err);
    }
    if (size > MAX_RESPONSE_BYTES) {
      res.destroy();
      throw new Error(`${this.origin} answered ${req.method} with more than ${MAX_RESPONSE_BYTES} bytes`);
    }
    return { status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) };
  }

  /** The response with its body unread, for a download the caller streams. */
  open(req: HttpRequest): Promise<IncomingMessage> {
    return new Promise<IncomingMessage>((resolve, reject) => {
      if (req.signal?.aborted) return reject(req.signal.reason);
      const headers: Record<string, string | number> = { ...req.headers };
      if (Buffer.isBuffer(req.body)) headers['content-length'] = req.body.length;
      else if (req.body) headers['content-length'] = req.contentLength ?? 0;
      const url = new URL(this.pathOf(req.path), this.origin);
      const outgoing = this.transport.request(url, { method: req.method, headers, agent: this.agent, signal: req.signal });
      outgoing.setTimeout(req.idleTimeoutMs ?? IDLE_TIMEOUT_MS, () =>
        outgoing.destroy(
          new VcenterUnreachable(`${this.origin} sent nothing for ${(req.idleTimeoutMs ?? IDLE_TIMEOUT_MS) / 1000}s`),
        ),
      );
      // A body that fails to read is the caller's problem, not the vCenter's.
      let bodyError: Error | undefined;
      outgoing.once('response', resolve);
      outgoing.once('error', (err) => {
        if (req.signal?.aborted) reject(req.signal.reason);
        else if (bodyError) reject(bodyError);
        else reject(err instanceof VcenterUnreachable ? err : unreachable(this.origin, err));
      });
      if (Buffer.isBuffer(req.body)) outgoing.end(req.body);
      else if (req.body) {
        const body = req.body();
        body.once('error', (err) => outgoing.destroy((bodyError = err)));
        body.pipe(outgoing);
      } else outgoing.end();
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

/** The connections of one vCenter, its certificate trusted as the agent's configuration says. */
function httpsAgent(trust: VcenterTrust): https.Agent {
  switch (trust.kind) {
    case 'system':
      return new https.Agent({ keepAlive: true });
    case 'ca':
      return new https.Agent({ keepAlive: true, ca: trust.ca });
    case 'insecure':
      return new https.Agent({ keepAlive: true, rejectUnauthorized: false });
    case 'thumbprint':
      return new PinnedAgent(trust.sha256);
  }
}

/**
 * Accepts exactly one certificate, by its SHA-256. The socket is handed to the request only after the
 * handshake showed that certificate, so not a byte of a request (a login's Basic header least of all)
 * reaches a server showing another.
 */
class PinnedAgent extends https.Agent {
  constructor(private readonly sha256: string) {
    super({ keepAlive: true });
  }

  override createConnection(
    options: https.RequestOptions,
    callback?: (err: Error | null, socket: Duplex) => void,
  ): Duplex | null | undefined {
    const socket = tls.connect({ ...(options as tls.ConnectionOptions), rejectUnauthorized: false });
    const fail = (err: Error) => {
      socket.destroy();
      callback?.(err, socket);
    };
    socket.once('error', fail);
    socket.once('secureConnect', () => {
      socket.off('error', fail);
      const seen = socket.getPeerCertificate().fingerprint256?.replace(/:/g, '').toLowerCase();
      if (seen !== this.sha256) {
        fail(new Error(`the vCenter's certificate is not the pinned one (SHA-256 ${seen ?? 'none'})`));
        return;
      }
      callback?.(null, socket);
    });
    return undefined;
  }
}

function unreachable(origin: string, err: unknown): VcenterUnreachable {
  const e = err as NodeJS.ErrnoException;
  return new VcenterUnreachable(`vCenter ${origin} is unreachable: ${e.code ?? e.message ?? String(err)}`);
}
