import { FileSource } from './file-source';
import { HttpSource } from './http-source';
import { STRICT_POLICY } from './policy';
import type { ImageSource, OpenOptions, SourceRef } from './source';

/** Opens a resolved source; an http(s) one under the given policy, the strict one by default. */
export async function openSource(ref: SourceRef, options: OpenOptions = {}): Promise<ImageSource> {
  return ref.kind === 'file' ? FileSource.open(ref) : HttpSource.open(ref, options.policy ?? STRICT_POLICY, options.signal);
}
