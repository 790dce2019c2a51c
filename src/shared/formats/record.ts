import type { ImageMetadata, InspectorName } from '../../images/inspect';

/**
 * What vmhub needs to know of one image format; src/images/format.ts lists them. Plain data and pure
 * functions, because the workflow bundle imports the records: the inspector is named here, and its
 * Node code is looked up by that name in src/images/inspect.ts.
 */
export interface ImageFormatRecord<N extends string = string> {
  name: N;
  /** How an error names it when an image matches no format, e.g. `ISO 9660 image`. */
  description: string;
  /** How many bytes from the start of an image `sniff` reads. */
  sniffBytes: number;
  /** Formats are sniffed lowest first: fixed magic numbers before a text test that their bytes might also pass. */
  sniffOrder: number;
  /** Whether the bytes at the start of an image are this format's. */
  sniff(head: Uint8Array): boolean;
  /** Which inspector reads the published bytes (the metadata's `kind`). */
  inspector: InspectorName;
  /** An agent runs the inspector over its download too: it checks an OVA's members against its manifest. */
  inspectOnDeploy: boolean;
  /** The blob's Content-Type. */
  contentType: string;
  /** The extension of the blob and of a deployed copy. */
  blobExtension: string;
  /** The published bytes start with an OVF descriptor worth a peek before staging (the product version). */
  hasDescriptor: boolean;
  /** The source is a descriptor: the bytes published are the OVA assembled from its package. */
  assembledFromPackage: boolean;
  /**
   * The content library item it becomes: the vCenter's item type, and whether the item's files are the
   * OVA's members (each with its own SHA-256) rather than the image as one file.
   */
  libraryItem: { type: string; members: boolean };
  /** A VM can be made from its library item: an instantiate check applies. */
  canInstantiate: boolean;
  /** `vmhub show`'s lines for the metadata its inspector read. */
  metadataLines(metadata: ImageMetadata): string[];
}

/** The bytes from..to as latin1 text, without Buffer, which the workflow bundle lacks. */
export function latin1(bytes: Uint8Array, from: number, to: number): string {
  return String.fromCharCode(...bytes.subarray(from, to));
}
