import type { ImageFormat } from './image-format';

/** One version of an image: the identity every workflow, activity and catalog record names. */
export interface VersionRef {
  image: string;
  version: string;
}

/** A published version as a copy of it is made or checked: what its bytes are and must hash to. */
export interface ImageVersion extends VersionRef {
  format: ImageFormat;
  sha256: string;
  sizeBytes: number;
}

/** A version's copy on one SDDC: the name decides the agent's paths, the digest which library item is ours. */
export interface SddcCopy extends ImageVersion {
  sddc: string;
}
