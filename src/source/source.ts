import fs from 'node:fs';
import path from 'node:path';
import { VmhubError } from '../errors';

/**
 * Where an image is read from: a file inside one of the repository roots, or an http(s) URL of a
 * server that answers Range requests. Both give random access by byte range.
 */
export type SourceRef = { kind: 'file'; path: string } | { kind: 'http'; url: string };

export interface ImageSource {
  readonly ref: SourceRef;
  readonly sizeBytes: number;
  /** Reads [start, end) into a fresh buffer. */
  read(start: number, end: number, signal?: AbortSignal): Promise<Buffer>;
  /** Streams [start, end) in chunks. */
  chunks(start: number, end: number, signal?: AbortSignal): AsyncIterable<Buffer>;
  close(): Promise<void>;
}

function inside(root: string, candidate: string): boolean {
  const rel = path.relative(root, candidate);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/** Resolves a publish `source` against the repository roots; anything outside them is `InvalidSource`. */
export function resolveSource(source: string, roots: string[]): SourceRef {
  if (typeof source !== 'string' || source.trim() === '') throw new VmhubError('InvalidSource', 'source is empty');
  if (source.includes('\0')) throw new VmhubError('InvalidSource', 'source contains a NUL character');
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(source)) {
    let url: URL;
    try {
      url = new URL(source);
    } catch {
      throw new VmhubError('InvalidSource', `source ${source} is not a valid URL`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new VmhubError(
        'InvalidSource',
        `source scheme ${url.protocol} is not supported; use a repository path or an http(s) URL`,
      );
    }
    if (url.username || url.password) throw new VmhubError('InvalidSource', 'source URL may not carry credentials');
    return { kind: 'http', url: url.toString() };
  }
  if (roots.length === 0) throw new VmhubError('InvalidSource', 'no repository root is configured (VMHUB_REPOSITORY_ROOTS)');
  const candidate = path.resolve(roots[0], source);
  const root = roots.find((r) => inside(path.resolve(r), candidate));
  if (!root) throw new VmhubError('InvalidSource', `source ${source} is outside the repository roots`);
  let real: string;
  try {
    real = fs.realpathSync(candidate);
  } catch {
    throw new VmhubError('InvalidSource', `source ${source} does not exist in the repository`);
  }
  if (!inside(fs.realpathSync(root), real))
    throw new VmhubError('InvalidSource', `source ${source} links outside its repository root`);
  if (!fs.statSync(real).isFile()) throw new VmhubError('InvalidSource', `source ${source} is not a regular file`);
  return { kind: 'file', path: real };
}

export async function openSource(ref: SourceRef, signal?: AbortSignal): Promise<ImageSource> {
  return ref.kind === 'file' ? FileSource.open(ref) : HttpSource.open(ref, signal);
}

class FileSource implements ImageSource {
  private constructor(
    readonly ref: SourceRef,
    private readonly handle: fs.promises.FileHandle,
    readonly sizeBytes: number,
  ) {}

  static async open(ref: { kind: 'file'; path: string }): Promise<FileSource> {
    const handle = await fs.promises.open(ref.path, 'r');
    const stat = await handle.stat();
    return new FileSource(ref, handle, stat.size);
  }

  async read(start: number, end: number): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(end - start);
    let done = 0;
    while (done < buf.length) {
      const { bytesRead } = await this.handle.read(buf, done, buf.length - done, start + done);
      if (bytesRead === 0)
        throw new VmhubError('SourceChanged', `source ended at ${start + done} bytes, expected ${this.sizeBytes}`);
      done += bytesRead;
    }
    return buf;
  }

  async *chunks(start: number, end: number, signal?: AbortSignal): AsyncIterable<Buffer> {
    const chunk = 4 * 1024 * 1024;
    for (let at = start; at < end; at += chunk) {
      signal?.throwIfAborted();
      yield await this.read(at, Math.min(at + chunk, end));
    }
  }

  close(): Promise<void> {
    return this.handle.close();
  }
}

class HttpSource implements ImageSource {
  private constructor(
    readonly ref: { kind: 'http'; url: string },
    readonly sizeBytes: number,
  ) {}

  /** Asks for the first byte: a 206 with a Content-Range total proves Range support and gives the size. */
  static async open(ref: { kind: 'http'; url: string }, signal?: AbortSignal): Promise<HttpSource> {
    let res: Response;
    try {
      res = await fetch(ref.url, { headers: { Range: 'bytes=0-0' }, signal });
    } catch (err) {
      throw new Error(`cannot reach ${redact(ref.url)}: ${(err as Error).message}`);
    }
    await res.body?.cancel();
    if (res.status === 404 || res.status === 410)
      throw new VmhubError('InvalidSource', `${redact(ref.url)} answered ${res.status}`);
    if (res.status >= 500) throw new Error(`${redact(ref.url)} answered ${res.status}`);
    const total = /\/(\d+)$/.exec(res.headers.get('content-range') ?? '');
    if (res.status !== 206 || !total) {
      throw new VmhubError('InvalidSource', `${redact(ref.url)} does not answer Range requests (status ${res.status})`);
    }
    return new HttpSource(ref, Number(total[1]));
  }

  async read(start: number, end: number, signal?: AbortSignal): Promise<Buffer> {
    const res = await this.get(start, end, signal);
    const buf = Buffer.from(await res.arrayBuffer());
    if (buf.length !== end - start)
      throw new Error(`short read from ${redact(this.ref.url)}: ${buf.length} of ${end - start} bytes`);
    return buf;
  }

  async *chunks(start: number, end: number, signal?: AbortSignal): AsyncIterable<Buffer> {
    const res = await this.get(start, end, signal);
    let got = 0;
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      got += chunk.length;
      yield Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
    }
    if (got !== end - start) throw new Error(`short read from ${redact(this.ref.url)}: ${got} of ${end - start} bytes`);
  }

  private async get(start: number, end: number, signal?: AbortSignal): Promise<Response> {
    if (end <= start) return new Response(new Uint8Array(0));
    const res = await fetch(this.ref.url, { headers: { Range: `bytes=${start}-${end - 1}` }, signal });
    if (res.status !== 206) {
      await res.body?.cancel();
      throw new Error(`${redact(this.ref.url)} answered ${res.status} to a range request`);
    }
    return res;
  }

  async close(): Promise<void> {}
}

/** A URL without its query string, which may hold a SAS token or other secret. */
export function redact(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}${u.search ? '?…' : ''}`;
  } catch {
    return '<url>';
  }
}
