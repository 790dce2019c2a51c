import { execFileSync } from 'node:child_process';
import { X509Certificate, createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { VcenterTrust } from '../../src/sddc/agent-vcenter';
import { VcenterUnreachable } from '../../src/sddc/http';
import { UploadOnThread } from '../../src/sddc/upload-on-thread';
import { VsphereApiError, VsphereRest } from '../../src/sddc/vsphere-rest';

const MiB = 1024 * 1024;

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

/** A server that hands each request to `handle`; over TLS with `tls`'s certificate. */
async function server(handle: Handler, tls?: { key: string; cert: string }) {
  const srv = tls ? https.createServer(tls, handle) : http.createServer(handle);
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const origin = `${tls ? 'https' : 'http'}://127.0.0.1:${(srv.address() as AddressInfo).port}`;
  return {
    origin,
    close: () => {
      srv.closeAllConnections();
      return new Promise<void>((resolve) => srv.close(() => resolve()));
    },
  };
}

const target = (origin: string, contentLength: number, trust: VcenterTrust = { kind: 'system' }) => ({
  origin,
  trust,
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

  it('starts no thread and sends nothing when given up before it began', async () => {
    let requests = 0;
    const srv = await server(() => requests++);
    try {
      const stop = new AbortController();
      const reason = new Error('cancelled first');
      stop.abort(reason);
      const upload = new UploadOnThread(target(srv.origin, 10), stop.signal);
      upload.write(Buffer.alloc(10));
      upload.end();
      await expect(upload.answered).rejects.toBe(reason);
      await upload.drained(0);
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(requests).toBe(0);
    } finally {
      await srv.close();
    }
  });

  it('trusts the vCenter on its thread as the agent is told: a pinned certificate or a CA; another pin gets not a byte', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmhub-upload-tls-'));
    const [keyFile, certFile] = [path.join(dir, 'key.pem'), path.join(dir, 'cert.pem')];
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'].concat([
        '-keyout',
        keyFile,
        '-out',
        certFile,
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
      ]),
      { stdio: 'ignore' },
    );
    const tls = { key: fs.readFileSync(keyFile, 'utf8'), cert: fs.readFileSync(certFile, 'utf8') };
    const pin = new X509Certificate(tls.cert).fingerprint256.replace(/:/g, '').toLowerCase();
    const received: string[] = [];
    const srv = await server((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        received.push(Buffer.concat(chunks).toString());
        res.writeHead(201).end();
      });
    }, tls);
    const send = async (trust: VcenterTrust, text: string) => {
      const upload = new UploadOnThread(target(srv.origin, text.length, trust), new AbortController().signal);
      upload.write(Buffer.from(text));
      upload.end();
      return (await upload.answered).status;
    };
    try {
      await expect(send({ kind: 'thumbprint', sha256: pin }, 'pinned')).resolves.toBe(201);
      await expect(send({ kind: 'ca', ca: tls.cert, file: certFile }, 'by its CA')).resolves.toBe(201);
      await expect(send({ kind: 'thumbprint', sha256: 'ab'.repeat(32) }, 'elsewhere')).rejects.toBeInstanceOf(VcenterUnreachable);
      await expect(send({ kind: 'system' }, 'unknown CA')).rejects.toBeInstanceOf(VcenterUnreachable);
      expect(received).toEqual(['pinned', 'by its CA']);
    } finally {
      await srv.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('VsphereRest.startUpload', () => {
  it("sends the session's header and turns a refusal into the vCenter's typed error", async () => {
    const seen: Array<{ method?: string; url?: string; session?: string }> = [];
    const srv = await server((req, res) => {
      seen.push({ method: req.method, url: req.url, session: req.headers['vmware-api-session-id'] as string | undefined });
      req.resume();
      req.on('end', () => {
        if (req.method === 'POST') return res.writeHead(200).end(JSON.stringify({ value: 'session-7' }));
        const refusal = {
          type: 'com.vmware.vapi.std.errors.invalid_argument',
          value: { messages: [{ default_message: 'no such file' }] },
        };
        res.writeHead(400).end(JSON.stringify(refusal));
      });
    });
    const rest = await VsphereRest.login(srv.origin, { username: 'u', password: 'p' }, { trust: { kind: 'system' } });
    try {
      const { upload, sent } = rest.startUpload(`${srv.origin}/cis/data/upload-1/disk.vmdk`, 4, 'disk.vmdk', {
        signal: new AbortController().signal,
      });
      upload.write(Buffer.from('disk'));
      upload.end();
      const refused = await sent.then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(refused).toBeInstanceOf(VsphereApiError);
      expect(refused).toMatchObject({ status: 400, type: 'com.vmware.vapi.std.errors.invalid_argument' });
      expect((refused as Error).message).toBe('upload of disk.vmdk failed with HTTP 400 invalid_argument: no such file');
      expect(seen[1]).toEqual({ method: 'PUT', url: '/cis/data/upload-1/disk.vmdk', session: 'session-7' });
    } finally {
      rest.http.close();
      await srv.close();
    }
  });
});
