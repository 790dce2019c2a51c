import { createHash } from 'node:crypto';
import { VmhubError } from '../../shared/errors';
import { parseOvf, type OvfEnvelope } from './envelope';

/**
 * Descriptors parsed in this thread, by the SHA-256 of their bytes: every activity that opens an OVF
 * package, the probe and the inspection of the same image then parse its descriptor once, and a
 * refused one is refused again without a second parse. The few most recent are kept (each bounded by
 * XML_LIMITS). Callers only read an envelope, never change it: it is shared.
 */
const CACHED = 8;
const parsed = new Map<string, { envelope: OvfEnvelope } | { refused: VmhubError }>();

export function parseDescriptor(bytes: Buffer): OvfEnvelope {
  const key = createHash('sha256').update(bytes).digest('hex');
  let result = parsed.get(key);
  if (result) parsed.delete(key);
  else {
    try {
      result = { envelope: parseOvf(bytes.toString('utf8')) };
    } catch (err) {
      if (!(err instanceof VmhubError)) throw err;
      result = { refused: err };
    }
    if (parsed.size >= CACHED) parsed.delete(parsed.keys().next().value!);
  }
  // Re-inserted: the map's order is the order of last use.
  parsed.set(key, result);
  if ('refused' in result) throw new VmhubError(result.refused.type, result.refused.message);
  return result.envelope;
}
