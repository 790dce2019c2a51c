import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** Ways the server can misbehave, for the hostile-source tests. */
export interface FileServerOptions {
  /** The Content-Range header to send instead of the true one. */
  contentRange?: (start: number, end: number, size: number) => string;
  /** A Content-Encoding header on every file answer; the bytes are sent as they are. */
  contentEncoding?: string;
  /** Bytes sent after the range asked for, without a Content-Length. */
  extraBytes?: number;
  /** A redirect for a request path (with its query), or undefined to serve the file. */
  redirect?: (path: string) => string | undefined;
  /** Answers with ETag and Last-Modified but ignores If-Match and If-Unmodified-Since. */
  ignoreConditions?: boolean;
  /** Sends a weak ETag, which If-Match cannot use, so a client falls back on Last-Modified. */
  weakEtag?: boolean;
}

export interface FileServer {
  /** `http://127.0.0.1:<port>` */
  origin: string;
  /** The URL of one file, its name encoded as one path segment. */
  url(name: string): string;
  /** Every request received: path with query, and headers. */
  requests: Array<{ path: string; headers: http.IncomingHttpHeaders }>;
  close(): Promise<void>;
}

/**
 * A local HTTP file server on 127.0.0.1; with ranges=true it answers Range requests (206), otherwise
 * only whole files. Files carry an ETag (size and modification time) and Last-Modified, and a
 * conditional request for a file that changed is answered 412.
 */
export async function startFileServer(root: string, ranges = true, options: FileServerOptions = {}): Promise<FileServer> {
  const requests: FileServer['requests'] = [];
  const server = http.createServer((req, res) => {
    const target = req.url ?? '/';
    requests.push({ path: target, headers: req.headers });
    const location = options.redirect?.(target);
    if (location !== undefined) {
      res.writeHead(302, { Location: location }).end();
      return;
    }
    const file = `${root}/${decodeURIComponent(target.replace(/\?.*$/, '').slice(1))}`;
    if (!fs.existsSync(file)) {
      res.writeHead(404).end();
      return;
    }
    const stat = fs.statSync(file);
    const size = stat.size;
    const etag = `${options.weakEtag ? 'W/' : ''}"${size}-${stat.mtimeMs}"`;
    const lastModified = stat.mtime.toUTCString();
    const ifMatch = req.headers['if-match'];
    const ifUnmodified = req.headers['if-unmodified-since'];
    const changed =
      (ifMatch !== undefined && ifMatch !== etag) ||
      (ifUnmodified !== undefined && Math.floor(stat.mtimeMs / 1000) > Date.parse(ifUnmodified) / 1000);
    if (changed && !options.ignoreConditions) {
      res.writeHead(412).end();
      return;
    }
    const headers: http.OutgoingHttpHeaders = { ETag: etag, 'Last-Modified': lastModified };
    if (options.contentEncoding) headers['Content-Encoding'] = options.contentEncoding;
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    if (ranges && m && size === 0) {
      res.writeHead(416, { ...headers, 'Content-Range': 'bytes */0' }).end();
    } else if (ranges && m) {
      const start = Number(m[1]);
      const end = m[2] ? Math.min(Number(m[2]), size - 1) : size - 1;
      headers['Content-Range'] = options.contentRange?.(start, end, size) ?? `bytes ${start}-${end}/${size}`;
      headers['Accept-Ranges'] = 'bytes';
      if (!options.extraBytes) headers['Content-Length'] = end - start + 1;
      res.writeHead(206, headers);
      const body = fs.createReadStream(file, { start, end });
      if (!options.extraBytes) {
        body.pipe(res);
        return;
      }
      body.pipe(res, { end: false });
      body.on('end', () => res.end(Buffer.alloc(options.extraBytes!, 0x41)));
    } else {
      res.writeHead(200, { ...headers, 'Content-Length': size });
      fs.createReadStream(file).pipe(res);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const origin = `http://127.0.0.1:${port}`;
  return {
    origin,
    url: (name) => `${origin}/${encodeURIComponent(name)}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
