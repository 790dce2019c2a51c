import { types } from 'node:util';
import { MessageChannel } from 'node:worker_threads';

/** Below this a buffer is not worth the trouble: the garbage collector's lag on it is harmless. */
const WORTH_IT = 64 * 1024;

/**
 * Gives a block's memory back now rather than at its thread's next garbage collection, which for
 * block-sized buffers comes only after a hundred megabytes or more of them have piled up: the memory is
 * moved into a message to a port that is closed unread, which drops it. The buffer is empty afterwards;
 * the caller must hold the only use of it. A buffer that shares its memory with others is left alone.
 */
export function freeNow(bytes: Uint8Array): void {
  const whole = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength;
  if (!whole || bytes.byteLength < WORTH_IT || !types.isArrayBuffer(bytes.buffer)) return;
  const { port1, port2 } = new MessageChannel();
  try {
    port1.postMessage(null, [bytes.buffer as ArrayBuffer]);
  } catch {
    // not transferable (Node marks some of its own buffers so): the collector will have it
  } finally {
    port1.close();
    port2.close();
  }
}
