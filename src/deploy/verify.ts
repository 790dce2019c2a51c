import type fs from 'node:fs';
import { discardPartial, type DeploymentPaths } from '../datastore/layout';
import { checkAgainstProvenance, type Provenance } from '../provenance/statement';
import { inSpan } from '../observability/spans';
import { VmhubError } from '../shared/errors';
import type { ImageMetadata, InspectOptions } from '../images/inspect';
import { formatOf, type ImageFormat } from '../shared/image-format';
import { hashPool, type ImageStream } from '../storage/hashing';
import { LocalCopyMismatch, SourceProblem, type DownloadInput } from './download-request';
import { metrics, noteVerificationFailure } from '../observability/metrics';

/**
 * Verifies the file's bytes in order as they reach it: a hashing thread reads them back from the page
 * cache, so the lanes hold no chunk in memory and never wait for verification, and what an earlier attempt
 * left on disk is verified the same way; where a reader of the file holds its bytes anyway (a streamed
 * import sends them on), it hands them over instead (`take`). The file stays open until `close` has resolved.
 */
export class WrittenBytesVerifier {
  private verifiedTo = 0;
  private verification = Promise.resolve();

  private constructor(
    private readonly stream: ImageStream,
    private readonly fd: number,
  ) {}

  static async open(
    handle: fs.promises.FileHandle,
    format: ImageFormat,
    inspect?: InspectOptions,
  ): Promise<WrittenBytesVerifier> {
    return new WrittenBytesVerifier(
      await hashPool().openStream(formatOf(format).inspectOnDeploy ? format : undefined, inspect),
      handle.fd,
    );
  }

  /** Takes in the bytes written up to `to`. */
  advanceTo(to: number): void {
    if (to === this.verifiedTo) return;
    this.chain(this.stream.pushFile(this.fd, this.verifiedTo, to - this.verifiedTo));
    this.verifiedTo = to;
  }

  private chain(pushed: Promise<unknown>): void {
    this.verification = Promise.all([this.verification, pushed]).then(() => undefined);
    this.verification.catch(() => undefined); // a failure surfaces at the last call
  }

  /**
   * Takes in the file's next bytes as a reader of them holds them, instead of reading them again: what it
   * does with them (sends them on) is then of the very bytes verified. Shared bytes are read in place, and
   * must stay as they are until the returned promise settles, which the reader waits for before it holds
   * many more: the hashing thread sets its pace, as it does a read of the file.
   */
  take(bytes: Buffer): Promise<void> {
    const pushed = this.stream.push(bytes, { digest: false });
    this.chain(pushed);
    this.verifiedTo += bytes.length;
    // Never rejects: a failure surfaces at `finish`.
    return pushed.then(
      () => undefined,
      () => undefined,
    );
  }

  /** The whole file's SHA-256 and the inspector's verdict and metadata, once every byte is taken in. */
  async finish(sizeBytes: number): Promise<{ sha256: string; metadata?: ImageMetadata; invalid?: Error }> {
    await this.verification;
    if (this.verifiedTo !== sizeBytes) throw new Error(`verified ${this.verifiedTo} of ${sizeBytes} bytes`);
    return this.stream.finish();
  }

  close(): Promise<void> {
    return this.stream.close();
  }
}

/** What hashing a whole file yields: its SHA-256 and the inspector's metadata or failure. */
export type Hashed = Awaited<ReturnType<WrittenBytesVerifier['finish']>>;

/** The first `sizeBytes` of an open file hashed (and inspected) in one sequential read on a hashing thread. */
export async function hashFile(
  handle: fs.promises.FileHandle,
  format: ImageFormat,
  sizeBytes: number,
  inspect?: InspectOptions,
): Promise<Hashed> {
  const verifier = await WrittenBytesVerifier.open(handle, format, inspect);
  try {
    verifier.advanceTo(sizeBytes);
    return await verifier.finish(sizeBytes);
  } finally {
    await verifier.close();
  }
}

/**
 * The SHA-256 decides whether the source gave the right bytes; only then does an OVA's own verdict
 * (manifest, structure) count, and that one is final, as are the signed members' digests. A file that
 * fails any is removed. Returns the metadata the agent's own inspection read.
 */
export async function verifyDownload(
  { sha256, metadata, invalid }: Hashed,
  input: Pick<DownloadInput, 'sha256' | 'sizeBytes'>,
  paths: DeploymentPaths,
  localCopy: { bytesReused: number; baseVersion?: string },
  provenance: Provenance,
): Promise<ImageMetadata | undefined> {
  return inSpan('vmhub.verify', { bytes: input.sizeBytes }, async () => {
    if (sha256 !== input.sha256) {
      metrics.verificationFailures.inc({ kind: 'sha256' });
      await discardPartial(paths);
      if (localCopy.bytesReused > 0) throw new LocalCopyMismatch(`built with ${localCopy.baseVersion}, SHA-256 ${sha256}`);
      throw new SourceProblem('failed', `yielded bytes with SHA-256 ${sha256}, expected ${input.sha256}`);
    }
    if (invalid !== undefined) {
      await discardPartial(paths);
      throw invalid instanceof VmhubError
        ? noteVerificationFailure(invalid)
        : new VmhubError('InvalidImage', `image fails verification: ${(invalid as Error).message}`);
    }
    try {
      checkAgainstProvenance(provenance, { sha256, sizeBytes: input.sizeBytes, members: hashedMembers(metadata) });
    } catch (err) {
      await discardPartial(paths);
      throw noteVerificationFailure(err);
    }
    return metadata;
  });
}

/** The SHA-256 of every member the inspector hashed on this side (an OVA's); none for other formats. */
export function hashedMembers(metadata: ImageMetadata | undefined): Array<{ name: string; sha256: string }> {
  if (metadata?.kind !== 'ova') return [];
  return metadata.archive.files.flatMap((f) => (f.sha256 ? [{ name: f.name, sha256: f.sha256 }] : []));
}
