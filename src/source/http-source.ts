import http from 'node:http';
import https from 'node:https';
import { VmhubError } from '../shared/errors';
import { checkTarget, MAX_REDIRECTS, redact, requestTarget, scrub, type SourcePolicy } from './policy';
import { MissingSource, type ImageSource, type SourceRef } from './source';

type HttpRef = Extract<SourceRef, { kind: 'http' }>;

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
/** A connection silent this long is dropped, and the read retried. */
const IDLE_TIMEOUT_MS = 30_000;

/** What binds reads to the content seen at open: a strong ETag, or else Last-Modified. */
interface Validator {
  response: 'etag' | 'last-modified';
  request: 'If-Match' | 'If-Unmodified-Since';
  value: string;
}

function validatorOf(res: http.IncomingMessage): Validator | undefined {
  const etag = res.headers.etag;
  if (etag && /^"[^"]*"$/.test(etag)) return { response: 'etag', request: 'If-Match', value: etag };
  const modified = res.headers['last-modified'];
  if (modified && !Number.isNaN(Date.parse(modified)))
    return { response: 'last-modified', request: 'If-Unmodified-Since', value: modified };
  return undefined;
}

function shown(value: string): string {
  return JSON.stringify(value.slice(0, 60));
}

/** Only identity bodies are read: a compressed one would not be the bytes the ranges count. */
function checkEncoding(res: http.IncomingMessage, where: string): void {
  const encoding = res.headers['content-encoding'];
  if (encoding !== undefined && encoding.trim().toLowerCase() !== 'identity') {
    throw new VmhubError(
      'InvalidSource',
      `${where} answered with Content-Encoding ${shown(encoding)}; only identity is accepted`,
    );
  }
  const transfer = res.headers['transfer-encoding'];
  if (transfer !== undefined && transfer.trim().toLowerCase() !== 'chunked') {
    throw new VmhubError('InvalidSource', `${where} answered with Transfer-Encoding ${shown(transfer)}`);
  }
}

function contentRange(res: http.IncomingMessage, where: string): { start: number; end: number; total: number } {
  const header = res.headers['content-range'] ?? '';
  const m = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(header);
  const [start, end, total] = m ? [Number(m[1]), Number(m[2]), Number(m[3])] : [];
  if (!m || !Number.isSafeInteger(total) || start! > end! || end! >= total!) {
    throw new VmhubError('InvalidSource', `${where} answered a range request with Content-Range ${shown(header)}`);
  }
  return { start: start!, end: end!, total: total! };
}

/** Reads the body into `into`, exactly filling it: a byte more is refused before it is stored. */
async function readBody(res: http.IncomingMessage, into: Buffer, where: string): Promise<void> {
  const length = res.headers['content-length'];
  if (length !== undefined && Number(length) !== into.length) {
    throw new VmhubError('InvalidSource', `${where} announced ${shown(length)} bytes for a range of ${into.length}`);
  }
  let at = 0;
  for await (const chunk of res as AsyncIterable<Buffer>) {
    if (at + chunk.length > into.length) {
      throw new VmhubError('InvalidSource', `${where} sent more than the ${into.length} bytes asked for`);
    }
    chunk.copy(into, at);
    at += chunk.length;
  }
  if (at < into.length) throw new Error(`short read from ${where}: ${at} of ${into.length} bytes`);
}

/**
 * One GET, redirects followed by hand: every hop is checked against the policy before it is
 * requested, and each request opens a connection of its own, to the address its check resolved.
 */
async function get(
  url: string,
  policy: SourcePolicy,
  headers: Record<string, string>,
  signal?: AbortSignal,
): Promise<http.IncomingMessage> {
  let target = new URL(url);
  for (let hop = 0; ; hop++) {
    const res = await send(target, policy, headers, signal);
    if (!REDIRECTS.has(res.statusCode ?? 0)) return res;
    res.destroy();
    const location = res.headers.location;
    const where = redact(target.href);
    if (!location) throw new VmhubError('InvalidSource', `${where} answered ${res.statusCode} without a Location`);
    if (hop === MAX_REDIRECTS) throw new VmhubError('InvalidSource', `${redact(url)} redirects more than ${MAX_REDIRECTS} times`);
    try {
      target = new URL(location, target);
    } catch {
      throw new VmhubError('InvalidSource', `${where} redirects to something that is not a URL`);
    }
  }
}

function send(
  url: URL,
  policy: SourcePolicy,
  headers: Record<string, string>,
  signal?: AbortSignal,
): Promise<http.IncomingMessage> {
  const lookup = checkTarget(url, policy);
  const { path, secret } = requestTarget(url, policy);
  const client = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = client.request(
      {
        protocol: url.protocol,
        hostname: url.hostname.replace(/^\[|\]$/g, ''),
        port: url.port || undefined,
        path,
        method: 'GET',
        headers: { ...headers, 'Accept-Encoding': 'identity' },
        agent: false,
        lookup,
        signal,
        timeout: IDLE_TIMEOUT_MS,
      },
      resolve,
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${IDLE_TIMEOUT_MS / 1000} s`)));
    req.on('error', (err) => {
      if (err instanceof VmhubError || err.name === 'AbortError') reject(err);
      else reject(new Error(`cannot reach ${redact(url.href)}: ${scrub(err.message, secret)}`));
    });
    req.end();
  });
}

/** An image on an http(s) server that answers Range requests, bound to the content seen at open. */
export class HttpSource implements ImageSource {
  readonly version: string | undefined;
  private readonly where: string;

  private constructor(
    readonly ref: HttpRef,
    private readonly policy: SourcePolicy,
    readonly sizeBytes: number,
    private readonly validator: Validator | undefined,
  ) {
    this.version = validator && `${validator.response}:${validator.value}`;
    this.where = redact(ref.url);
  }

  /** Asks for the first byte: a 206 with a Content-Range total proves Range support and gives the size. */
  static async open(ref: HttpRef, policy: SourcePolicy, signal?: AbortSignal): Promise<HttpSource> {
    const where = redact(ref.url);
    const res = await get(ref.url, policy, { Range: 'bytes=0-0' }, signal);
    try {
      const status = res.statusCode ?? 0;
      if (status === 404 || status === 410) throw new MissingSource(`${where} answered ${status}`);
      if (status >= 500 || status === 429) throw new Error(`${where} answered ${status}`);
      if (status === 416 && res.headers['content-range'] === 'bytes */0') {
        return new HttpSource(ref, policy, 0, validatorOf(res));
      }
      if (status !== 206) {
        throw new VmhubError('InvalidSource', `${where} does not answer Range requests (status ${status})`);
      }
      checkEncoding(res, where);
      const range = contentRange(res, where);
      if (range.start !== 0 || range.end !== 0) {
        throw new VmhubError('InvalidSource', `${where} answered bytes ${range.start}-${range.end} when asked for 0-0`);
      }
      await readBody(res, Buffer.alloc(1), where);
      return new HttpSource(ref, policy, range.total, validatorOf(res));
    } finally {
      res.destroy();
    }
  }

  async read(start: number, end: number, signal?: AbortSignal, into?: Buffer): Promise<Buffer> {
    const buf = into ?? Buffer.allocUnsafe(end - start);
    if (buf.length === 0) return buf;
    const headers: Record<string, string> = { Range: `bytes=${start}-${end - 1}` };
    if (this.validator) headers[this.validator.request] = this.validator.value;
    const res = await get(this.ref.url, this.policy, headers, signal);
    try {
      this.checkAnswer(res, start, end);
      await readBody(res, buf, this.where);
      return buf;
    } finally {
      res.destroy();
    }
  }

  private checkAnswer(res: http.IncomingMessage, start: number, end: number): void {
    const status = res.statusCode ?? 0;
    if (status === 412) throw new VmhubError('SourceChanged', `${this.where} changed since it was first read`);
    if ([404, 410, 416].includes(status))
      throw new VmhubError('SourceChanged', `${this.where} answered ${status}: it changed or went away`);
    if (status >= 500 || status === 429) throw new Error(`${this.where} answered ${status}`);
    if (status !== 206) throw new VmhubError('InvalidSource', `${this.where} answered ${status} to a range request`);
    checkEncoding(res, this.where);
    const seen = this.validator && res.headers[this.validator.response];
    if (seen !== undefined && seen !== this.validator!.value) {
      throw new VmhubError(
        'SourceChanged',
        `${this.where} changed since it was first read (${this.validator!.response} ${shown(seen)})`,
      );
    }
    const range = contentRange(res, this.where);
    if (range.total !== this.sizeBytes) {
      throw new VmhubError('SourceChanged', `${this.where} is now ${range.total} bytes, was ${this.sizeBytes}`);
    }
    if (range.start !== start || range.end !== end - 1) {
      throw new VmhubError(
        'InvalidSource',
        `${this.where} answered bytes ${range.start}-${range.end} when asked for ${start}-${end - 1}`,
      );
    }
  }

  async close(): Promise<void> {}
}
