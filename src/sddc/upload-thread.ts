import { Readable } from 'node:stream';
import { parentPort } from 'node:worker_threads';
import type { VcenterTrust } from './agent-vcenter';
import { VcenterHttp } from './http';

/** Where an upload goes: the vCenter's origin and how its certificate is trusted, the endpoint's path. */
export interface UploadTarget {
  origin: string;
  trust: VcenterTrust;
  path: string;
  headers: Record<string, string>;
  contentLength: number;
  idleTimeoutMs?: number;
}

export type UploadRequest = ({ op: 'start' } & UploadTarget) | { op: 'bytes'; bytes: Uint8Array } | { op: 'end' };

export type UploadReply =
  /** Bytes handed to the connection: the caller's count of what it holds unsent goes down by them. */
  | { op: 'taken'; bytes: number }
  | { op: 'answered'; status: number; body: Uint8Array }
  | { op: 'failed'; name: string; message: string };

/** Bytes the request's body stream holds before it stops asking for more. */
const BODY_BUFFER = 4 * 1024 * 1024;

/**
 * The thread of one upload to a vCenter (./upload-on-thread): its own connection, fed the bytes to send
 * as the caller writes them. The TLS encryption and the socket writes of a streamed import run here, not
 * on the event loop that drives the download feeding it.
 */
function serve(port: NonNullable<typeof parentPort>): void {
  const queue: Buffer[] = [];
  let ended = false;
  let finished = false;
  let wanted = false;
  const body = new Readable({
    highWaterMark: BODY_BUFFER,
    read() {
      wanted = true;
      feed();
    },
  });
  const feed = () => {
    while (wanted && queue.length > 0) {
      const bytes = queue.shift()!;
      port.postMessage({ op: 'taken', bytes: bytes.length } satisfies UploadReply);
      wanted = body.push(bytes);
    }
    if (wanted && ended && queue.length === 0 && !finished) {
      finished = true;
      body.push(null);
    }
  };
  const send = (req: UploadTarget) => {
    const http = new VcenterHttp(req.origin, req.trust);
    http
      .request({
        method: 'PUT',
        path: req.path,
        headers: req.headers,
        body: () => body,
        contentLength: req.contentLength,
        idleTimeoutMs: req.idleTimeoutMs,
      })
      .then(
        (res) => port.postMessage({ op: 'answered', status: res.status, body: res.body } satisfies UploadReply),
        (err: Error) => port.postMessage({ op: 'failed', name: err.name, message: err.message } satisfies UploadReply),
      )
      // The caller ends the thread once it has the answer, or without one to give the upload up.
      .finally(() => http.close());
  };
  port.on('message', (req: UploadRequest) => {
    if (req.op === 'start') send(req);
    else if (req.op === 'bytes') queue.push(Buffer.from(req.bytes.buffer, req.bytes.byteOffset, req.bytes.byteLength));
    else ended = true;
    feed();
  });
}

if (parentPort) serve(parentPort);
