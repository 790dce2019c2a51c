import type { Config } from '../config';
import { VmhubError } from '../shared/errors';
import { formatOf, type ImageFormat } from '../shared/image-format';
import { peekDescriptor } from '../images/ova';
import { describeOvf } from '../images/ovf/metadata';
import type { ImageSource } from '../source/source';
import { hashPool } from '../storage/hashing';
import { planBlocks, type BlockPlan } from '../shared/block-plan';

export interface ProbeResult {
  format: ImageFormat;
  plan: BlockPlan;
  /** Range activities to run at once, from the worker's configuration. */
  rangeFanOut: number;
  /** Where the bytes come from, for people: "repository" or the URL's host. */
  origin: string;
  /** The version the image declares for itself (OVF ProductSection), as written. */
  productVersion?: string;
  /** What identifies the source's content now (ETag, modification time); later reads pin it. */
  sourceVersion?: string;
}

/** A block plan for an image of this size; an image no block blob can hold is an invalid image. */
function planImage(sizeBytes: number, blockSizeBytes: number): BlockPlan {
  try {
    return planBlocks(sizeBytes, blockSizeBytes);
  } catch (err) {
    if (err instanceof RangeError) throw new VmhubError('InvalidImage', err.message);
    throw err;
  }
}

/** What a publish plans with, from an opened source: its blocks, origin and declared version. */
export async function probeImage(
  s: ImageSource,
  format: ImageFormat,
  config: Pick<Config, 'blockSizeBytes' | 'rangeFanOut'>,
  signal: AbortSignal,
): Promise<ProbeResult> {
  const origin = s.ref.kind === 'http' ? new URL(s.ref.url).host : 'repository';
  let productVersion: string | undefined;
  if (formatOf(format).hasDescriptor) {
    const descriptor = await peekDescriptor((start, end) => s.read(start, end, signal), s.sizeBytes);
    if (descriptor) productVersion = describeOvf(await hashPool().descriptor(descriptor)).version;
  }
  return {
    format,
    plan: planImage(s.sizeBytes, config.blockSizeBytes),
    rangeFanOut: config.rangeFanOut,
    origin,
    productVersion,
    sourceVersion: s.version,
  };
}
