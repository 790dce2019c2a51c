import { createHash, type Hash } from 'node:crypto';
import fs from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { findFormat, type ImageFormat } from '../shared/image-format';
import { createInspector, type ImageMetadata, type InspectOptions, type Inspector } from '../images/inspect';
import { parseDescriptor } from '../images/ovf/descriptor';
import type { OvfEnvelope } from '../images/ovf/envelope';
import { freeNow } from './free-now';

/** A throw here would end the thread, and with it every stream it hashes: a format that is none gets no inspector. */
function inspectorOf(format: ImageFormat, options?: InspectOptions): Inspector | undefined {
  const name = findFormat(format)?.inspector;
  return name && createInspector(name, options);
}

/**
 * One hashing thread of the pool in ./hashing: SHA-256 of single blocks, and image streams that take an
 * image's blocks in order for its whole-image SHA-256 and its inspector (OVA walk and manifest digests,
 * ISO descriptors), so none of that runs on the event loop that drives the transfers. A stream also takes
 * bytes that are already in a file (`pushFile`): the thread reads them itself, so they never cross between
 * threads and the caller holds no buffer for them. An inspector that fails stops inspecting, and says so
 * in every later answer; the whole-image hash goes on, so that a caller can still tell bytes that are not
 * the image's from an image that is invalid. It also parses OVF descriptors (`descriptor`), the work
 * that a hostile descriptor makes longest, so that it never holds the event loop either.
 */
export type HashRequest =
  | { id: number; op: 'sha256'; bytes: Uint8Array; giveBack: boolean }
  | { id: number; op: 'descriptor'; bytes: Uint8Array }
  | { id: number; op: 'open'; stream: number; format?: ImageFormat; inspect?: InspectOptions }
  | { id: number; op: 'push'; stream: number; bytes: Uint8Array; digest: boolean }
  | { id: number; op: 'pushFile'; stream: number; fd: number; position: number; length: number }
  | { id: number; op: 'finish'; stream: number }
  | { id: number; op: 'close'; stream: number };

export interface ErrorShape {
  type?: string;
  message: string;
}

export interface HashReply {
  id: number;
  hex?: string;
  bytes?: Uint8Array;
  metadata?: ImageMetadata;
  envelope?: OvfEnvelope;
  /** The inspector's failure, once it has failed. */
  invalid?: ErrorShape;
  error?: ErrorShape;
}

interface ImageStream {
  whole: Hash;
  inspector?: Inspector;
  invalid?: ErrorShape;
  /** The stream's work, one push after another. */
  turn: Promise<unknown>;
  /** Reads of `pushFile` land here, one piece at a time. */
  piece?: Buffer;
  /** Set by `close`: pushes still queued do nothing, so the caller may close the file once `close` is answered. */
  closed: boolean;
}

/** `pushFile` reads in pieces of this size: a bounded buffer per stream, whatever the length pushed. */
const FILE_PIECE = 1024 * 1024;

const streams = new Map<number, ImageStream>();
const port = parentPort!;

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function reply(message: HashReply): void {
  port.postMessage(message, message.bytes ? [message.bytes.buffer as ArrayBuffer] : []);
}

function shape(err: unknown): ErrorShape {
  const e = err as { type?: unknown; message?: unknown };
  return { type: typeof e.type === 'string' ? e.type : undefined, message: String(e.message ?? err) };
}

function failed(id: number, err: unknown): void {
  reply({ id, error: shape(err) });
}

/** Runs a stream's step after the ones before it. */
function inTurn(id: number, stream: ImageStream, step: () => Promise<HashReply>): void {
  const result = stream.turn.then(step);
  stream.turn = result.catch(() => undefined);
  result.then(
    (message) => reply(message),
    (err: unknown) => failed(id, err),
  );
}

/** Feeds the inspector until it fails; its failure is kept, not thrown. */
async function inspect(stream: ImageStream, step: (inspector: Inspector) => Promise<void>): Promise<void> {
  if (!stream.inspector || stream.invalid) return;
  try {
    await step(stream.inspector);
  } catch (err) {
    stream.invalid = shape(err);
  }
}

function handle(req: HashRequest): void {
  if (req.op === 'sha256') {
    const hex = sha256(req.bytes);
    if (req.giveBack) reply({ id: req.id, hex, bytes: req.bytes });
    else {
      freeNow(req.bytes);
      reply({ id: req.id, hex });
    }
    return;
  }
  if (req.op === 'descriptor') {
    reply({ id: req.id, envelope: parseDescriptor(Buffer.from(req.bytes.buffer, req.bytes.byteOffset, req.bytes.byteLength)) });
    return;
  }
  if (req.op === 'open') {
    streams.set(req.stream, {
      whole: createHash('sha256'),
      inspector: req.format && inspectorOf(req.format, req.inspect),
      turn: Promise.resolve(),
      closed: false,
    });
    reply({ id: req.id });
    return;
  }
  const stream = streams.get(req.stream);
  if (!stream) {
    failed(req.id, new Error(`image stream ${req.stream} is not open on this hashing thread`));
    return;
  }
  if (req.op === 'push') {
    inTurn(req.id, stream, async () => {
      const bytes = Buffer.from(req.bytes.buffer, req.bytes.byteOffset, req.bytes.byteLength);
      // A stream closed (a cancel, a failure) takes in nothing more: a backlog of pushes ends at once.
      if (!stream.closed) {
        stream.whole.update(bytes);
        await inspect(stream, (inspector) => inspector.write(bytes));
      }
      const hex = req.digest ? sha256(bytes) : undefined;
      freeNow(req.bytes);
      return { id: req.id, hex, invalid: stream.invalid };
    });
  } else if (req.op === 'pushFile') {
    inTurn(req.id, stream, async () => {
      for (let at = 0; at < req.length && !stream.closed;) {
        stream.piece ??= Buffer.allocUnsafe(FILE_PIECE);
        const position = req.position + at;
        const read = fs.readSync(req.fd, stream.piece, 0, Math.min(FILE_PIECE, req.length - at), position);
        if (read <= 0) throw new Error(`the file ends at offset ${position}, before the ${req.length} bytes pushed`);
        const bytes = stream.piece.subarray(0, read);
        stream.whole.update(bytes);
        await inspect(stream, (inspector) => inspector.write(bytes));
        at += read;
        // Lets a `close` in: pushes only chain promises, which would otherwise run to the end first.
        await new Promise((resolve) => setImmediate(resolve));
      }
      return { id: req.id, invalid: stream.invalid };
    });
  } else if (req.op === 'finish') {
    inTurn(req.id, stream, async () => {
      streams.delete(req.stream);
      let metadata: ImageMetadata | undefined;
      await inspect(stream, async (inspector) => {
        metadata = await inspector.finish();
      });
      return { id: req.id, hex: stream.whole.digest('hex'), metadata, invalid: stream.invalid };
    });
  } else {
    streams.delete(req.stream);
    stream.closed = true;
    inTurn(req.id, stream, async () => ({ id: req.id }));
  }
}

port.on('message', (req: HashRequest) => {
  try {
    handle(req);
  } catch (err) {
    failed(req.id, err);
  }
});
