import type { BlockStore } from './block-store';
import { hashPool } from './hashing';

/** Bytes sent to the hashing thread at once: few messages, and at most two such buffers held. */
const PUSH_BYTES = 4 * 1024 * 1024;

export interface BlobHash {
  sha256: string;
  sizeBytes: number;
  /** The blob's etag while it was read: the digest is of that state of the blob. */
  etag: string;
}

/**
 * Reads a committed blob whole, with a streamed ranged read, and hashes it on a hashing thread. A write to
 * the blob meanwhile changes its etag, so one etag before and after binds the digest to one state of it;
 * otherwise this throws (a plain, retryable error).
 */
export async function hashBlob(store: BlockStore, blob: string, { signal }: { signal: AbortSignal }): Promise<BlobHash> {
  const before = await store.getProperties(blob, { abortSignal: signal });
  const stream = await hashPool().openStream();
  try {
    const buffer = Buffer.allocUnsafe(Math.min(PUSH_BYTES, Math.max(1, before.contentLength)));
    let fill = 0;
    let read = 0;
    let pushed: Promise<unknown> = Promise.resolve();
    // push() copies the bytes before it returns, so the buffer is filled again at once.
    const flush = async () => {
      await pushed;
      pushed = stream.push(buffer.subarray(0, fill), { digest: false });
      // Its failure surfaces at the next flush; should the read fail first, nothing awaits it.
      pushed.catch(() => undefined);
      fill = 0;
    };
    for await (const chunk of await store.readStream(blob, 0, before.contentLength, { abortSignal: signal })) {
      for (let at = 0; at < chunk.length;) {
        const n = chunk.copy(buffer, fill, at);
        fill += n;
        at += n;
        if (fill === buffer.length) await flush();
      }
      read += chunk.length;
    }
    if (fill > 0) await flush();
    await pushed;
    const after = await store.getProperties(blob, { abortSignal: signal });
    if (after.etag !== before.etag || read !== before.contentLength) {
      throw new Error(
        `${blob} changed while it was read (${read} of ${before.contentLength} bytes, etag ${before.etag} then ${after.etag})`,
      );
    }
    const { sha256 } = await stream.finish();
    return { sha256, sizeBytes: read, etag: before.etag };
  } catch (err) {
    await stream.close();
    throw err;
  }
}
