import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** A local HTTP file server; with ranges=true it answers Range requests (206), otherwise only whole files. */
export async function startFileServer(
  root: string,
  ranges = true,
): Promise<{ url: (name: string) => string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const file = `${root}/${decodeURIComponent((req.url ?? '/').slice(1))}`;
    if (!fs.existsSync(file)) {
      res.writeHead(404).end();
      return;
    }
    const size = fs.statSync(file).size;
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    if (ranges && m) {
      const start = Number(m[1]);
      const end = m[2] ? Math.min(Number(m[2]), size - 1) : size - 1;
      res.writeHead(206, {
        'Content-Range': `bytes ${start}-${end}/${size}`,
        'Content-Length': end - start + 1,
        'Accept-Ranges': 'bytes',
      });
      fs.createReadStream(file, { start, end }).pipe(res);
    } else {
      res.writeHead(200, { 'Content-Length': size });
      fs.createReadStream(file).pipe(res);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: (name) => `http://127.0.0.1:${port}/${encodeURIComponent(name)}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
