import { VmhubError } from '../shared/errors';
import { ISO_HEAD_BYTES, parseIso, type IsoMetadata } from './iso';
import { OvaInspector, type OvaInspectOptions, type OvaMetadata } from './ova';

/** The metadata the catalog keeps of an image, read from its bytes in one sequential pass. */
export type ImageMetadata = OvaMetadata | IsoMetadata;

export interface Inspector {
  write(chunk: Buffer): Promise<void>;
  finish(): Promise<ImageMetadata>;
}

/** Keeps the volume descriptors at the start of an ISO and lets the rest pass. */
class IsoInspector implements Inspector {
  private readonly head: Buffer[] = [];
  private kept = 0;

  async write(chunk: Buffer): Promise<void> {
    if (this.kept >= ISO_HEAD_BYTES) return;
    const part = chunk.subarray(0, ISO_HEAD_BYTES - this.kept);
    this.head.push(Buffer.from(part));
    this.kept += part.length;
  }

  async finish(): Promise<IsoMetadata> {
    return parseIso(Buffer.concat(this.head));
  }
}

/** Metadata travels in activity results and the catalog record: bounded well below Temporal's payload limit. */
export const MAX_METADATA_BYTES = 512 * 1024;

function checkMetadataSize(metadata: ImageMetadata): ImageMetadata {
  const size = Buffer.byteLength(JSON.stringify(metadata));
  if (size > MAX_METADATA_BYTES) {
    throw new VmhubError(
      'InvalidImage',
      `image metadata is ${size} bytes serialized, more than the ${MAX_METADATA_BYTES} accepted`,
    );
  }
  return metadata;
}

/** What an inspection is told besides the bytes: the CAs an OVF certificate is judged against. */
export type InspectOptions = OvaInspectOptions;

/** The inspectors a format record names, by the metadata kind each reads. */
const INSPECTORS = {
  ova: (options: InspectOptions) => new OvaInspector(options),
  iso: () => new IsoInspector(),
} satisfies Record<ImageMetadata['kind'], (options: InspectOptions) => Inspector>;

export type InspectorName = keyof typeof INSPECTORS;

/** The inspector a format's record names (`formatOf(format).inspector`). */
export function createInspector(name: InspectorName, options: InspectOptions = {}): Inspector {
  const inspector = INSPECTORS[name](options);
  return {
    write: (chunk) => inspector.write(chunk),
    finish: async () => checkMetadataSize(await inspector.finish()),
  };
}
