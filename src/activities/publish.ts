import { createHash } from 'node:crypto';
import { activityInfo, cancellationSignal, heartbeat, log } from '@temporalio/activity';
import type { ContainerClient } from '@azure/storage-blob';
import type { Catalog } from '../catalog/catalog';
import { runPool } from '../concurrency';
import type { Config } from '../config';
import { VmhubError } from '../errors';
import { withFailures } from '../failures';
import { CONTENT_TYPES, type ImageFormat } from '../images/format';
import { createInspector, type ImageMetadata } from '../images/inspect';
import { peekDescriptor } from '../images/ova';
import { parseOvf } from '../images/ovf/envelope';
import { describeOvf } from '../images/ovf/metadata';
import { blobName, type BlobLocation, type PublishResult } from '../publish/input';
import { openImageSource } from '../source/image-source';
import type { ImageSource } from '../source/source';
import { blockDigest, blockId, blockListDigest, parseBlockId } from '../storage/block-ids';
import { blockBounds, planBlocks, type BlockPlan, type BlockRange } from '../storage/block-plan';
import type { StorageClients } from '../storage/clients';
import { primaryLocation } from '../topology/topology';

export interface PublishDeps {
  storage: StorageClients;
  catalog: Catalog;
  config: Config;
}

export interface ProbeResult {
  format: ImageFormat;
  plan: BlockPlan;
  /** Range activities to run at once, from the worker's configuration. */
  rangeFanOut: number;
  /** Where the bytes come from, for people: "repository" or the URL's host. */
  origin: string;
  /** The version the image declares for itself (OVF ProductSection), as written. */
  productVersion?: string;
}

export interface ClaimInput {
  image: string;
  version: string;
  format: ImageFormat;
  plan: BlockPlan;
}

export type ClaimOutput = { state: 'claimed'; location: BlobLocation } | { state: 'available'; existing: PublishResult };

export interface StageInput {
  source: string;
  location: BlobLocation;
  plan: BlockPlan;
  range: BlockRange;
}

export interface StageOutput {
  uploaded: number;
  reused: number;
  bytesUploaded: number;
}

/** Heartbeat details of a staging attempt: every block before `next` is staged. */
interface StageCheckpoint {
  next: number;
  uploaded: number;
  reused: number;
  bytesUploaded: number;
}

export interface SourceDigest {
  sha256: string;
  blockListDigest: string;
}

export interface Inspection extends SourceDigest {
  metadata: ImageMetadata;
}

export interface CommitInput {
  source: string;
  location: BlobLocation;
  plan: BlockPlan;
  format: ImageFormat;
  digest: SourceDigest;
  image: string;
  version: string;
}

export function resultFromRecord(r: {
  image: string;
  version: string;
  format: ImageFormat;
  sizeBytes: number;
  sha256?: string;
  blockSize: number;
  blockCount: number;
  location: BlobLocation;
  metadata?: ImageMetadata;
}): PublishResult {
  return {
    image: r.image,
    version: r.version,
    format: r.format,
    sizeBytes: r.sizeBytes,
    sha256: r.sha256 ?? '',
    blockSize: r.blockSize,
    blockCount: r.blockCount,
    location: r.location,
    metadata: r.metadata!,
  };
}

export function createPublishActivities({ storage, catalog, config }: PublishDeps) {
  const withSource = async <T>(
    source: string,
    fn: (s: ImageSource, format: ImageFormat) => Promise<T>,
    declared?: ImageFormat,
  ): Promise<T> => {
    const { image, format } = await openImageSource(source, config.repositoryRoots, { declared, signal: cancellationSignal() });
    try {
      return await fn(image, format);
    } finally {
      await image.close();
    }
  };

  const container = (location: BlobLocation): ContainerClient => storage.container(location.storage);

  return {
    /** Checks the source, tells its format from its bytes and plans its blocks. */
    async probeSource(input: { source: string; format?: ImageFormat }): Promise<ProbeResult> {
      return withFailures(() =>
        withSource(
          input.source,
          async (s, format) => {
            const origin = s.ref.kind === 'http' ? new URL(s.ref.url).host : 'repository';
            let productVersion: string | undefined;
            if (format !== 'iso') {
              const descriptor = await peekDescriptor((start, end) => s.read(start, end, cancellationSignal()), s.sizeBytes);
              if (descriptor) productVersion = describeOvf(await parseOvf(descriptor)).version;
            }
            return {
              format,
              plan: planBlocks(s.sizeBytes, config.blockSizeBytes),
              rangeFanOut: config.rangeFanOut,
              origin,
              productVersion,
            };
          },
          input.format,
        ),
      );
    },

    /** Starts the catalog record `uploading`, or reports the version that is already available. */
    async claimVersion(input: ClaimInput): Promise<ClaimOutput> {
      const primary = primaryLocation(storage.topology);
      const location: BlobLocation = {
        storage: primary.id,
        container: primary.container,
        blob: blobName(input.image, input.version, input.format),
      };
      await storage.container(primary.id).createIfNotExists();
      const claim = await catalog.claimVersion({
        image: input.image,
        version: input.version,
        format: input.format,
        sizeBytes: input.plan.sizeBytes,
        blockSize: input.plan.blockSize,
        blockCount: input.plan.blockCount,
        location,
      });
      return claim.state === 'available'
        ? { state: 'available', existing: resultFromRecord(claim.record) }
        : { state: 'claimed', location };
    },

    /**
     * One sequential pass over the source: the SHA-256 of the whole image, a digest of the block IDs it
     * implies (the commit compares it with the staged blocks, so the committed blob is these very bytes),
     * and the image's metadata, with every OVA member checked against the manifest on the way.
     */
    async inspectSource(input: { source: string; plan: BlockPlan }): Promise<Inspection> {
      return withFailures(() =>
        withSource(input.source, async (s, format) => {
          if (s.sizeBytes !== input.plan.sizeBytes) {
            throw new VmhubError('SourceChanged', `source is now ${s.sizeBytes} bytes, was ${input.plan.sizeBytes}`);
          }
          const whole = createHash('sha256');
          const inspector = createInspector(format);
          const ids: string[] = [];
          const readBlock = (i: number) => {
            const { start, end } = blockBounds(input.plan, i);
            const reading = s.read(start, end, cancellationSignal());
            reading.catch(() => undefined); // awaited below; a failure after the loop has stopped is moot
            return reading;
          };
          // Read one block ahead, and hash each block for its ID on the thread pool while the
          // whole-image hash and the inspector take it on this thread.
          let next = input.plan.blockCount > 0 ? readBlock(0) : undefined;
          for (let i = 0; i < input.plan.blockCount; i++) {
            const block = await next!;
            next = i + 1 < input.plan.blockCount ? readBlock(i + 1) : undefined;
            const digest = blockDigest(block);
            whole.update(block);
            await inspector.write(block);
            ids.push(blockId(i, await digest));
            heartbeat({ block: i });
          }
          const metadata = await inspector.finish();
          return { sha256: whole.digest('hex'), blockListDigest: blockListDigest(ids), metadata };
        }),
      );
    },

    /**
     * Stages a contiguous range of blocks with several uploads in flight. Blocks already staged with the
     * same bytes (same ID) are skipped, and a retried attempt resumes after the last checkpoint.
     */
    async stageBlockRange(input: StageInput): Promise<StageOutput> {
      return withFailures(() =>
        withSource(input.source, async (s) => {
          const blob = container(input.location).getBlockBlobClient(input.location.blob);
          const signal = cancellationSignal();
          const resumed = activityInfo().heartbeatDetails as StageCheckpoint | undefined;
          const end = input.range.first + input.range.count;
          const staged = new Set<string>();
          const list = await blob.getBlockList('uncommitted', { abortSignal: signal }).catch((err: { statusCode?: number }) => {
            if (err.statusCode === 404) return { uncommittedBlocks: [] };
            throw err;
          });
          for (const b of list.uncommittedBlocks ?? []) staged.add(b.name);

          const progress: StageCheckpoint = resumed ?? { next: input.range.first, uploaded: 0, reused: 0, bytesUploaded: 0 };
          if (resumed) log.info('resuming staging', { range: input.range, next: resumed.next, alreadyStaged: staged.size });
          const done = new Set<number>();
          const indices: number[] = [];
          for (let i = progress.next; i < end; i++) indices.push(i);

          // A slow block must not look like a dead worker: beat on a timer as well as after each block.
          const keepAlive = setInterval(() => heartbeat(progress), 5_000);
          try {
            await runPool(indices, config.transferConcurrency, async (i) => {
              const { start, end: stop } = blockBounds(input.plan, i);
              const bytes = await s.read(start, stop, signal);
              const id = blockId(i, await blockDigest(bytes));
              if (staged.has(id)) {
                progress.reused++;
              } else {
                await blob.stageBlock(id, bytes, bytes.length, { abortSignal: signal });
                progress.uploaded++;
                progress.bytesUploaded += bytes.length;
              }
              done.add(i);
              while (done.has(progress.next)) done.delete(progress.next++);
              heartbeat(progress);
            });
          } finally {
            clearInterval(keepAlive);
          }
          return { uploaded: progress.uploaded, reused: progress.reused, bytesUploaded: progress.bytesUploaded };
        }),
      );
    },

    /** Commits the staged blocks in order, after checking they are the bytes the hashing pass saw; verifies the size. */
    async commitBlocks(input: CommitInput): Promise<{ etag: string }> {
      return withFailures(async () => {
        const blob = container(input.location).getBlockBlobClient(input.location.blob);
        const signal = cancellationSignal();
        const committed = await blob.getProperties({ abortSignal: signal }).catch(() => undefined);
        if (committed?.metadata?.sha256 === input.digest.sha256 && committed.contentLength === input.plan.sizeBytes) {
          return { etag: committed.etag! };
        }
        const list = await blob.getBlockList('uncommitted', { abortSignal: signal });
        const byIndex = new Map<number, string[]>();
        for (const b of list.uncommittedBlocks ?? []) {
          const parsed = parseBlockId(b.name);
          if (!parsed || parsed.index >= input.plan.blockCount) continue;
          byIndex.set(parsed.index, [...(byIndex.get(parsed.index) ?? []), b.name]);
        }
        const ids: string[] = [];
        const ambiguous: number[] = [];
        for (let i = 0; i < input.plan.blockCount; i++) {
          const candidates = byIndex.get(i) ?? [];
          if (candidates.length === 0) throw new Error(`block ${i} is not staged`);
          if (candidates.length > 1) ambiguous.push(i);
          ids.push(candidates[0]);
        }
        if (ambiguous.length > 0) {
          // Blocks left by an earlier attempt with other bytes: the source says which one is right.
          await withSource(input.source, async (s) => {
            for (const i of ambiguous) {
              const { start, end } = blockBounds(input.plan, i);
              ids[i] = blockId(i, await blockDigest(await s.read(start, end, signal)));
            }
          });
        }
        if (blockListDigest(ids) !== input.digest.blockListDigest) {
          throw new VmhubError('SourceChanged', 'the source changed while it was being published; start the publish again');
        }
        const response = await blob.commitBlockList(ids, {
          abortSignal: signal,
          blobHTTPHeaders: { blobContentType: CONTENT_TYPES[input.format] },
          metadata: { sha256: input.digest.sha256, image: input.image, version: input.version },
        });
        const props = await blob.getProperties({ abortSignal: signal });
        if (props.contentLength !== input.plan.sizeBytes) {
          throw new Error(`committed blob is ${props.contentLength} bytes, expected ${input.plan.sizeBytes}`);
        }
        return { etag: response.etag! };
      });
    },

    async markAvailable(input: {
      image: string;
      version: string;
      sha256: string;
      metadata: ImageMetadata;
    }): Promise<PublishResult> {
      return resultFromRecord(await catalog.markAvailable(input.image, input.version, input.sha256, input.metadata));
    },

    /** After a failed publish: no committed blob and no available version remain. */
    async abandonPublish(input: { image: string; version: string; location: BlobLocation; error: string }): Promise<void> {
      const record = await catalog.getVersion(input.image, input.version);
      if (record?.status === 'available') return;
      await container(input.location).getBlockBlobClient(input.location.blob).deleteIfExists();
      await catalog.markFailed(input.image, input.version, input.error);
    },
  };
}

export type PublishActivities = ReturnType<typeof createPublishActivities>;
