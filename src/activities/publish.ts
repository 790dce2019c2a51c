import { activityInfo, cancellationSignal, heartbeat, log } from '@temporalio/activity';
import type { Catalog } from '../catalog/catalog';
import type { RunRef } from '../catalog/image-records';
import type { Config } from '../config';
import { VmhubError } from '../errors';
import { withFailures } from '../failures';
import { CONTENT_TYPES, formatOf, type ImageFormat } from '../images/format';
import type { ImageMetadata } from '../images/inspect';
import { peekDescriptor } from '../images/ova';
import { parseOvf } from '../images/ovf/envelope';
import { describeOvf } from '../images/ovf/metadata';
import { HeldBytes, TapRegistry, type Claim } from '../publish/block-tap';
import { blobName, type BlobLocation, type PublishResult } from '../publish/input';
import { openImageSource } from '../source/image-source';
import type { ImageSource } from '../source/source';
import { blockDigest, blockDigestOf, blockId, blockListDigest, parseBlockId } from '../storage/block-ids';
import { blockBounds, planBlocks, rangesOf, type BlockPlan, type BlockRange } from '../storage/block-plan';
import { BlockBuffers } from '../storage/block-buffers';
import { ByteBudget } from '../storage/byte-budget';
import { isBlockStoreError, unlessNotFound, type BlockStore, type BlockStores } from '../storage/block-store';
import { hashPool } from '../storage/hashing';
import type { TemporalView } from '../temporal';
import { primaryLocation } from '../topology/topology';
import { letFinish, transferSignal, withListenerRoom } from './transfer-signal';

export interface PublishDeps {
  storage: BlockStores;
  catalog: Catalog;
  config: Config;
  temporal: TemporalView;
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
  /** What identifies the source's content now (ETag, modification time); later reads pin it. */
  sourceVersion?: string;
}

export interface ClaimInput {
  image: string;
  version: string;
  format: ImageFormat;
  plan: BlockPlan;
}

export type ClaimOutput = { state: 'claimed'; location: BlobLocation } | { state: 'available'; existing: PublishResult };

/** A commit either happened, or names the ranges whose blocks are no longer staged, to stage again. */
export type CommitOutput = { committed: true; etag: string } | { committed: false; missing: BlockRange[] };

/** What abandoning a publish removed, for the operator. */
export interface AbandonOutput {
  /** False when this run held no claim: another run's version and blob were left alone. */
  owned: boolean;
  removed: string[];
}

export interface StageInput {
  source: string;
  pin?: string;
  location: BlobLocation;
  plan: BlockPlan;
  range: BlockRange;
}

export interface StageOutput {
  uploaded: number;
  reused: number;
  bytesUploaded: number;
}

/**
 * Heartbeat details of a staging attempt: every block before `next` is staged (a retry resumes there);
 * `bytesDone` of the range's `bytesTotal` are staged, for progress readers (see src/run-progress.ts).
 */
export interface StageCheckpoint {
  next: number;
  uploaded: number;
  reused: number;
  bytesUploaded: number;
  phase?: 'staging';
  bytesDone?: number;
  bytesTotal?: number;
}

/** Heartbeat details of the inspection: the pass has read `bytesDone` of `bytesTotal`, and is at `block`. */
export interface InspectBeat {
  phase: 'inspecting';
  block: number;
  bytesDone: number;
  bytesTotal: number;
}

/** Bytes of blocks first … end-1 of the plan. */
function bytesOfBlocks(plan: BlockPlan, first: number, end: number): number {
  return end > first ? blockBounds(plan, end - 1).end - blockBounds(plan, first).start : 0;
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
  pin?: string;
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

/** The workflow run this activity works for: the owner a claim records. */
function thisRun(): RunRef {
  const run = activityInfo().workflowExecution;
  if (!run) throw new Error('a publish activity runs only inside a workflow');
  return { workflowId: run.workflowId, runId: run.runId };
}

function lostClaim(image: string, version: string): VmhubError {
  return new VmhubError('VersionConflict', `this run no longer owns ${image}@${version}: another run took it over`);
}

/** Stage and inspect activities of one publish meet in this process's tap under this key. */
function tapKey(source: string, pin: string | undefined, plan: BlockPlan): string {
  const { workflowId, runId } = thisRun();
  return JSON.stringify([workflowId, runId, source, pin ?? null, plan.sizeBytes, plan.blockSize]);
}

/** Runs `lanes` copies of lane until all have stopped; the first failure stops the others and is rethrown. */
async function runLanes(lanes: number, signal: AbortSignal, lane: (signal: AbortSignal) => Promise<void>): Promise<void> {
  const stop = new AbortController();
  // Every lane's claim, read and write listen to it at once.
  const laneSignal = withListenerRoom(AbortSignal.any([signal, stop.signal]), lanes);
  let first: { error: unknown } | undefined;
  await Promise.all(
    Array.from({ length: lanes }, () =>
      lane(laneSignal).catch((error: unknown) => {
        first ??= { error };
        stop.abort(error);
      }),
    ),
  );
  // A cancel is reported as the SDK's own reason, which is what makes the activity end as cancelled.
  if (signal.aborted) throw signal.reason;
  if (first) throw first.error;
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

export function createPublishActivities({ storage, catalog, config, temporal }: PublishDeps) {
  /** Fails unless this run still owns the version's claim: a run that lost it must not commit. */
  const requireClaim = async (image: string, version: string): Promise<void> => {
    const record = await catalog.versions.get(image, version);
    if (record?.status !== 'uploading' || record.owner?.runId !== thisRun().runId) throw lostClaim(image, version);
  };

  const policy = { hosts: config.sourceHosts, credentials: storage.topology.sources };
  /** Opens the source; with `pin` (the version the probe saw), other content is SourceChanged. */
  const withSource = async <T>(
    source: string,
    fn: (s: ImageSource, format: ImageFormat) => Promise<T>,
    options: { declared?: ImageFormat; pin?: string } = {},
  ): Promise<T> => {
    const { image, format } = await openImageSource(source, config.repositoryRoots, {
      ...options,
      policy,
      signal: cancellationSignal(),
    });
    try {
      return await fn(image, format);
    } finally {
      await image.close();
    }
  };

  const storeOf = (location: BlobLocation): BlockStore => storage.store(location.storage);
  const budget = new ByteBudget(config.maxInflightBytes);
  // A quarter of the budget at most waits in taps for inspectors, and staging runs no further ahead of an
  // inspector than that holds: one that lags (a starved machine) slows the staging instead of reading the
  // source again, and the worker's peak memory stays near its uploads' own.
  const taps = new TapRegistry(config.maxInflightBytes / 4);
  // Uploads in flight for one publish on this worker, whichever of its ranges they belong to.
  const slots = config.rangeFanOut * config.transferConcurrency;
  const hashes = hashPool();
  // Blocks are read into these and given back once uploaded and inspected; a block whose read or upload
  // failed is never given back, as a request may still be reading or writing it.
  const buffers = new BlockBuffers(() => budget.capacity - budget.heldBytes);
  const giveBack = (bytes: Buffer) => buffers.give(bytes);

  return {
    /** Checks the source, tells its format from its bytes and plans its blocks. */
    async probeSource(input: { source: string; format?: ImageFormat }): Promise<ProbeResult> {
      return withFailures(() =>
        withSource(
          input.source,
          async (s, format) => {
            const origin = s.ref.kind === 'http' ? new URL(s.ref.url).host : 'repository';
            let productVersion: string | undefined;
            if (formatOf(format).hasDescriptor) {
              const descriptor = await peekDescriptor((start, end) => s.read(start, end, cancellationSignal()), s.sizeBytes);
              if (descriptor) productVersion = describeOvf(await parseOvf(descriptor)).version;
            }
            return {
              format,
              plan: planImage(s.sizeBytes, config.blockSizeBytes),
              rangeFanOut: config.rangeFanOut,
              origin,
              productVersion,
              sourceVersion: s.version,
            };
          },
          { declared: input.format },
        ),
      );
    },

    /**
     * Claims image@version for this run, or reports the version that is already available. A claim held
     * by another run that is still open is a VersionConflict naming it; one left by a closed run is taken over.
     */
    async claimVersion(input: ClaimInput): Promise<ClaimOutput> {
      return withFailures(async () => {
        const primary = primaryLocation(storage.topology);
        const location: BlobLocation = {
          storage: primary.id,
          container: primary.container,
          blob: blobName(input.image, input.version, input.format),
        };
        await storage.store(primary.id).createContainer();
        const version = {
          image: input.image,
          version: input.version,
          format: input.format,
          sizeBytes: input.plan.sizeBytes,
          blockSize: input.plan.blockSize,
          blockCount: input.plan.blockCount,
          location,
        };
        const me = thisRun();
        const claim = await catalog.versions.claim(version, me);
        if (claim.state === 'available') return { state: 'available', existing: resultFromRecord(claim.record) };
        if (claim.state === 'claimed') return { state: 'claimed', location };
        if (claim.owner && !(await temporal.isClosed(claim.owner))) {
          throw new VmhubError(
            'VersionConflict',
            `${input.image}@${input.version} is being published by workflow ${claim.owner.workflowId}; wait for it or cancel it`,
          );
        }
        log.info('taking over a claim left by a closed run', {
          image: input.image,
          version: input.version,
          previous: claim.owner,
        });
        if (!(await catalog.versions.takeOver(version, me, claim.owner))) {
          throw new Error(`the claim on ${input.image}@${input.version} changed while being taken over; retrying`);
        }
        return { state: 'claimed', location };
      });
    },

    /**
     * One sequential pass over the source: the SHA-256 of the whole image, a digest of the block IDs it
     * implies (the commit compares it with the staged blocks, so the committed blob is these very bytes),
     * and the image's metadata, with every OVA member checked against the manifest on the way. Blocks
     * that this publish's staging in this process has read and digested come from the tap; the others
     * are read here. Hashing and inspection run on a hashing thread, fed in order.
     */
    async inspectSource(input: { source: string; plan: BlockPlan; pin?: string }): Promise<Inspection> {
      return withFailures(() =>
        withSource(
          input.source,
          async (s, format) => {
            const { plan } = input;
            if (s.sizeBytes !== plan.sizeBytes) {
              throw new VmhubError('SourceChanged', `source is now ${s.sizeBytes} bytes, was ${plan.sizeBytes}`);
            }
            const signal = transferSignal(config.transferConcurrency);
            const stream = await hashes.openStream(format);
            // Attached once nothing can fail before the `finally` that detaches it: staging waits for it.
            const tap = taps.tap(tapKey(input.source, input.pin, plan), plan, slots).attachInspector();
            const ids: string[] = new Array<string>(plan.blockCount);
            const counts = { fromTap: 0, readHere: 0 };
            const readHere = async (i: number): Promise<HeldBytes> => {
              const { start, end } = blockBounds(plan, i);
              const reservation = await budget.acquire(end - start, signal);
              try {
                return new HeldBytes(await s.read(start, end, signal, buffers.take(end - start)), reservation, giveBack);
              } catch (err) {
                reservation.release();
                throw err;
              }
            };
            // A block is hashed on the thread while the next one is fetched; one at a time waits there.
            const taking: Array<Promise<void>> = [];
            let ahead: { index: number; held: Promise<HeldBytes> } | undefined;
            let block = 0;
            let bytesDone = 0;
            const beat = (): void => {
              const details: InspectBeat = { phase: 'inspecting', block, bytesDone, bytesTotal: plan.sizeBytes };
              heartbeat(details);
            };
            const keepAlive = setInterval(beat, 5_000);
            try {
              for (; block < plan.blockCount; block++) {
                const i = block;
                let next: { held: HeldBytes; digest?: string };
                if (ahead?.index === i) {
                  next = { held: await ahead.held };
                  ahead = undefined;
                  tap.passed(i);
                } else {
                  next = (await tap.take(i, signal)) ?? { held: await readHere(i) };
                }
                const { held, digest } = next;
                if (digest !== undefined) {
                  counts.fromTap++;
                  ids[i] = blockId(i, digest);
                } else {
                  counts.readHere++;
                  // Reading here, the next block is likely read here too: start it now unless a lane will bring it.
                  if (i + 1 < plan.blockCount && !tap.expects(i + 1)) {
                    ahead = { index: i + 1, held: readHere(i + 1) };
                    ahead.held.catch(() => undefined); // awaited next time round, or let go in `finally`
                  }
                }
                try {
                  await taking.shift();
                } catch (err) {
                  held.release();
                  throw err;
                }
                // The thread reads the bytes in place: they are let go once it has answered.
                const taken = stream
                  .push(held.bytes, { digest: digest === undefined })
                  .then((answer) => {
                    // An invalid image fails the publish now, not after the last byte is read.
                    if (answer.invalid) throw answer.invalid;
                    if (answer.sha256 !== undefined) ids[i] = blockId(i, blockDigestOf(answer.sha256));
                  })
                  .finally(() => held.release());
                taken.catch(() => undefined); // awaited before the next push
                taking.push(taken);
                bytesDone = blockBounds(plan, i).end;
                beat();
              }
              for (const taken of taking.splice(0)) await taken;
              const { sha256, metadata, invalid } = await stream.finish();
              if (invalid) throw invalid;
              log.info('inspected', { blocks: plan.blockCount, ...counts });
              return { sha256, blockListDigest: blockListDigest(ids), metadata: metadata! };
            } finally {
              clearInterval(keepAlive);
              tap.detach();
              void stream.close();
              ahead?.held.then(
                (held) => held.release(),
                () => undefined,
              );
              await Promise.allSettled(taking);
            }
          },
          { pin: input.pin },
        ),
      );
    },

    /**
     * Stages a contiguous range of blocks. Its lanes take part in this publish's staging on this worker:
     * up to fan-out × concurrency uploads in flight, lowest blocks first across the ranges running here,
     * each block read once, digested on a hashing thread, offered to the inspection after its upload.
     * Blocks already staged with the same bytes (same ID) are skipped, and a retried attempt resumes after
     * the last checkpoint. Every read waits for the worker's byte budget.
     */
    async stageBlockRange(input: StageInput): Promise<StageOutput> {
      return withFailures(() =>
        withSource(
          input.source,
          async (s) => {
            const { plan } = input;
            const store = storeOf(input.location);
            const blob = input.location.blob;
            const signal = transferSignal(config.transferConcurrency);
            const resumed = activityInfo().heartbeatDetails as StageCheckpoint | undefined;
            const staged = new Set<string>();
            const list = await unlessNotFound(store.uncommittedBlocks(blob, { abortSignal: signal }));
            for (const b of list ?? []) staged.add(b.name);

            const progress: StageCheckpoint = resumed ?? { next: input.range.first, uploaded: 0, reused: 0, bytesUploaded: 0 };
            if (resumed) log.info('resuming staging', { range: input.range, next: resumed.next, alreadyStaged: staged.size });
            const { first, count } = input.range;
            progress.phase = 'staging';
            progress.bytesTotal = bytesOfBlocks(plan, first, first + count);
            // Blocks this attempt stages after `next` are added as each one ends, whatever the order.
            progress.bytesDone = bytesOfBlocks(plan, first, progress.next);
            const tap = taps.tap(tapKey(input.source, input.pin, plan), plan, slots);
            const range = tap.register(input.range, progress.next);
            const beat = () => {
              progress.next = range.firstNotDone();
              heartbeat(progress);
            };

            const stage = async (claim: Claim, laneSignal: AbortSignal): Promise<void> => {
              const i = claim.index;
              const { start, end } = blockBounds(plan, i);
              const reservation = await budget.acquire(end - start, laneSignal);
              let held: HeldBytes;
              let digest: string;
              try {
                const bytes = await s.read(start, end, laneSignal, buffers.take(end - start));
                digest = blockDigestOf(await hashes.sha256(bytes));
                held = new HeldBytes(bytes, reservation, giveBack);
              } catch (err) {
                reservation.release();
                throw err;
              }
              try {
                tap.offer(claim, { index: i, digest, held });
                const id = blockId(i, digest);
                if (staged.has(id)) {
                  progress.reused++;
                } else {
                  const { bytes } = held;
                  await letFinish(laneSignal, (abortSignal) => store.stageBlock(blob, id, bytes, { abortSignal }));
                  progress.uploaded++;
                  progress.bytesUploaded += bytes.length;
                }
              } catch (err) {
                // A request that failed may still be reading the bytes: the collector frees them, not us.
                held.pin();
                throw err;
              } finally {
                held.release();
              }
            };

            // A slow block must not look like a dead worker: beat on a timer as well as after each block.
            const keepAlive = setInterval(beat, 5_000);
            try {
              await runLanes(slots, signal, async (laneSignal) => {
                for (let claim; (claim = await tap.claim(range, laneSignal));) {
                  try {
                    await stage(claim, laneSignal);
                  } catch (err) {
                    tap.giveBack(claim);
                    throw err;
                  }
                  tap.complete(claim);
                  const { start, end } = blockBounds(plan, claim.index);
                  progress.bytesDone = (progress.bytesDone ?? 0) + end - start;
                  beat();
                }
              });
            } finally {
              clearInterval(keepAlive);
              tap.unregister(range);
            }
            return { uploaded: progress.uploaded, reused: progress.reused, bytesUploaded: progress.bytesUploaded };
          },
          { pin: input.pin },
        ),
      );
    },

    /**
     * Commits the staged blocks in order, after checking that this run still owns the version and that
     * the blocks are the bytes the hashing pass saw; verifies the size. Blocks no longer staged are
     * reported for staging again rather than retried blind.
     */
    async commitBlocks(input: CommitInput): Promise<CommitOutput> {
      // A commit of 50,000 blocks, or re-reading ambiguous ones, takes a while: beat so a dead worker shows.
      const keepAlive = setInterval(() => heartbeat(), 5_000);
      return withFailures(async (): Promise<CommitOutput> => {
        heartbeat();
        await requireClaim(input.image, input.version);
        const store = storeOf(input.location);
        const blob = input.location.blob;
        const signal = transferSignal(config.transferConcurrency);
        const committed = await unlessNotFound(store.getProperties(blob, { abortSignal: signal }));
        if (
          committed?.metadata.sha256 === input.digest.sha256 &&
          committed.metadata.run === thisRun().runId &&
          committed.contentLength === input.plan.sizeBytes
        ) {
          return { committed: true, etag: committed.etag };
        }
        const list = await unlessNotFound(store.uncommittedBlocks(blob, { abortSignal: signal }));
        const byIndex = new Map<number, string[]>();
        for (const b of list ?? []) {
          const parsed = parseBlockId(b.name);
          if (!parsed || parsed.index >= input.plan.blockCount) continue;
          byIndex.set(parsed.index, [...(byIndex.get(parsed.index) ?? []), b.name]);
        }
        const missing: number[] = [];
        for (let i = 0; i < input.plan.blockCount; i++) if (!byIndex.has(i)) missing.push(i);
        if (missing.length > 0) {
          log.warn('blocks are no longer staged', { missing: missing.length });
          return { committed: false, missing: rangesOf(missing) };
        }
        const ids: string[] = [];
        const ambiguous: number[] = [];
        for (let i = 0; i < input.plan.blockCount; i++) {
          const candidates = byIndex.get(i)!;
          if (candidates.length > 1) ambiguous.push(i);
          ids.push(candidates[0]);
        }
        if (ambiguous.length > 0) {
          // Blocks left by an earlier attempt with other bytes: the source says which one is right.
          await withSource(
            input.source,
            async (s) => {
              for (const i of ambiguous) {
                const { start, end } = blockBounds(input.plan, i);
                ids[i] = blockId(i, await blockDigest(await s.read(start, end, signal)));
              }
            },
            { pin: input.pin },
          );
        }
        if (blockListDigest(ids) !== input.digest.blockListDigest) {
          throw new VmhubError('SourceChanged', 'the source changed while it was being published; start the publish again');
        }
        const response = await letFinish(signal, (abortSignal) =>
          store.commitBlocks(blob, ids, {
            abortSignal,
            // Whatever another writer did to the blob since it was read makes this commit fail, not overwrite.
            conditions: committed ? { ifMatch: committed.etag } : { ifNoneMatch: '*' },
            contentType: CONTENT_TYPES[input.format],
            metadata: { sha256: input.digest.sha256, image: input.image, version: input.version, run: thisRun().runId },
          }),
        ).catch(async (err: unknown) => {
          if (!isBlockStoreError(err, 'conflict', 'precondition-failed')) throw err;
          // The SDK retries a request whose answer was lost: the blob may hold this very commit.
          const now = await unlessNotFound(store.getProperties(blob, { abortSignal: signal }));
          if (now?.metadata.run === thisRun().runId && now.metadata.sha256 === input.digest.sha256) return { etag: now.etag };
          throw new VmhubError('VersionConflict', `another writer changed ${input.location.blob} during the commit`);
        });
        const props = await store.getProperties(blob, { abortSignal: signal });
        if (props.contentLength !== input.plan.sizeBytes) {
          throw new VmhubError(
            'StorageMismatch',
            `committed blob is ${props.contentLength} bytes, expected ${input.plan.sizeBytes}`,
          );
        }
        return { committed: true, etag: response.etag };
      }).finally(() => clearInterval(keepAlive));
    },

    /** uploading → available, for the run that owns the claim. */
    async markAvailable(input: {
      image: string;
      version: string;
      sha256: string;
      metadata: ImageMetadata;
    }): Promise<PublishResult> {
      return withFailures(async () => {
        const record = await catalog.versions.markAvailable(input.image, input.version, thisRun(), input.sha256, input.metadata);
        if (!record) throw lostClaim(input.image, input.version);
        return resultFromRecord(record);
      });
    },

    /**
     * After a failed or cancelled publish, once its staging has stopped: no committed blob, no staged
     * blocks and no available version remain. Writing the blob is what discards uncommitted blocks on
     * Azure, hence the empty upload before the delete. Only the run that owns the claim touches anything.
     */
    async abandonPublish(input: {
      image: string;
      version: string;
      location: BlobLocation;
      status: 'failed' | 'cancelled';
      error: string;
    }): Promise<AbandonOutput> {
      const record = await catalog.versions.get(input.image, input.version);
      if (record?.status !== 'uploading' || record.owner?.runId !== thisRun().runId) return { owned: false, removed: [] };
      const store = storeOf(input.location);
      const blob = input.location.blob;
      const removed: string[] = [];
      const props = await unlessNotFound(store.getProperties(blob));
      const list = await unlessNotFound(store.uncommittedBlocks(blob));
      const staged = list?.length ?? 0;
      if (props || staged > 0) {
        await store.upload(blob, '');
        await store.deleteIfExists(blob);
        if (props) removed.push(`committed blob ${input.location.storage}/${input.location.blob}`);
        if (staged > 0) removed.push(`${staged} staged blocks`);
      }
      await catalog.versions.endClaim(input.image, input.version, thisRun(), input.status, input.error);
      removed.push(`catalog record marked ${input.status}`);
      return { owned: true, removed };
    },
  };
}

export type PublishActivities = ReturnType<typeof createPublishActivities>;
