import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { VcenterUnreachable } from '../../src/sddc/http';
import { UploadOnThread } from '../../src/sddc/upload-on-thread';

const MiB = 1024 * 1024;

/** A server that hands each PUT to `handle`; its requests' bodies are counted, and hashed as they arrive. */
async function server(handle: (req: http.IncomingMessage, res: http.ServerResponse) => void) {
  const srv = http.createServer(handle);
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;
  return {
    origin,
    close: () => {
      srv.closeAllConnections();
      return new Promise<void>((resolve) => srv.close(() => resolve()));
    },
  };
}

const target = (origin: string, contentLength: number) => ({
  origin,
  trust: { kind: 'system' as const },
  path: '/upload/item?x=1',
  headers: { 'content-type': 'application/octet-stream', 'x-session': 'secret' },
  contentLength,
});

function sharedCopy(bytes: Buffer): Buffer {
  const out = Buffer.from(new SharedArrayBuffer(bytes.length));
  bytes.copy(out);
  return out;
}

describe('UploadOnThread', () => {
  it('sends bytes on shared memory and ordinary ones, views of larger buffers too, in order, with the headers', async () => {
    const parts = [randomBytes(3 * MiB), randomBytes(1000), randomBytes(2 * MiB + 7)];
    const whole = Buffer.concat(parts);
    let seen: { sha256: string; length: number; session?: string; url?: string } | undefined;
    const srv = await server((req, res) => {
      const hash = createHash('sha256');
      let length = 0;
      req.on('data', (c: Buffer) => {
        hash.update(c);
        length += c.length;
      });
      req.on('end', () => {
        seen = { sha256: hash.digest('hex'), length, session: req.headers['x-session'] as string, url: req.url };
        res.writeHead(201).end('done');
      });
    });
    try {
      const upload = new UploadOnThread(target(srv.origin, whole.length), new AbortController().signal);
      upload.write(sharedCopy(parts[0]));
      // A view into the middle of a larger, ordinary buffer: only its bytes go.
      const larger = Buffer.concat([randomBytes(50), parts[1], randomBytes(50)]);
      upload.write(larger.subarray(50, 50 + parts[1].length));
      upload.write(sharedCopy(parts[2]).subarray(0));
      upload.end();
      const answer = await upload.answered;
      expect(answer.status).toBe(201);
      expect(answer.body.toString()).toBe('done');
      expect(seen).toEqual({
        sha256: createHash('sha256').update(whole).digest('hex'),
        length: whole.length,
        session: 'secret',
        url: '/upload/item?x=1',
      });
    } finally {
      await srv.close();
    }
  });

  it('holds the writer back while the server does not read, and lets it go once it does', async () => {
    let request: http.IncomingMessage | undefined;
    const srv = await server((req, res) => {
      request = req;
      req.pause();
      req.on('end', () => res.writeHead(201).end());
    });
    try {
      const size = 64 * MiB;
      const upload = new UploadOnThread(target(srv.origin, size), new AbortController().signal);
      for (let at = 0; at < size; at += 4 * MiB) upload.write(Buffer.from(new SharedArrayBuffer(4 * MiB)));
      upload.end();
      let drained = false;
      const waiting = upload.drained(8 * MiB).then(() => (drained = true));
      await new Promise((resolve) => setTimeout(resolve, 500));
      // Socket buffers take a few MiB; 64 MiB is far beyond them.
      expect(drained).toBe(false);
      request!.resume();
      await waiting;
      expect((await upload.answered).status).toBe(201);
    } finally {
      await srv.close();
    }
  });

  it("rejects with the signal's reason when aborted mid-upload, and the server sees the request end unfinished", async () => {
    let aborted!: () => void;
    const serverSawAbort = new Promise<void>((resolve) => (aborted = resolve));
    const srv = await server((req) => {
      req.on('data', () => undefined);
      req.on('close', () => {
        if (!req.complete) aborted();
      });
    });
    try {
      const stop = new AbortController();
      const upload = new UploadOnThread(target(srv.origin, 16 * MiB), stop.signal);
      upload.write(Buffer.from(new SharedArrayBuffer(MiB)));
      const reason = new Error('cancelled');
      setTimeout(() => stop.abort(reason), 200);
      await expect(upload.answered).rejects.toBe(reason);
      await serverSawAbort;
      // Writes after the end are dropped, not thrown.
      expect(() => upload.write(Buffer.alloc(10))).not.toThrow();
    } finally {
      await srv.close();
    }
  });

  it('fails as unreachable when the vCenter hangs up mid-upload', async () => {
    const srv = await server((req) => {
      req.once('data', () => req.socket.destroy());
    });
    try {
      const upload = new UploadOnThread(target(srv.origin, 16 * MiB), new AbortController().signal);
      upload.write(Buffer.from(new SharedArrayBuffer(2 * MiB)));
      await expect(upload.answered).rejects.toBeInstanceOf(VcenterUnreachable);
      await upload.drained(0);
    } finally {
      await srv.close();
    }
  });
});
