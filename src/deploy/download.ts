import fs from 'node:fs';
import { O_CREAT, O_RDWR, openNoFollow } from '../datastore/files';
import { discardPartial, type DeploymentPaths } from '../datastore/layout';
import { inSpan, noteFacts } from '../observability/spans';
import type { TrustedKey } from '../provenance/keys';
import type { Provenance } from '../provenance/statement';
import { PROVENANCE_FAILURES, VmhubError } from '../shared/errors';
import type { BlockStores } from '../storage/block-store';
import {
  LocalCopyMismatch,
  SourceProblem,
  type DownloadInput,
  type DownloadOutput,
  type DownloadProgress,
  type SourceFailure,
  type StepLog,
} from './download-request';
import { fetchChunks } from './fetch-chunks';
import { streamRange } from './range-stream';
import { repairKeptBlocks } from './repair-copy';
import { checkAgentPolicy, inspectFile, type AgentOvfPolicy } from './ovf-check';
import { finalizeDownload } from './finalize';
import { ChunkSource } from './local-copy';
import { bytesDone, resumePartial } from './partial-state';
import { keepEnvelope, presentAsSigned, signedAt, type Signed } from './provenance-check';
import type { SourceCandidate } from './placement';
import { checkSource } from './source-check';
import { verifyDownload, WrittenBytesVerifier, type Hashed } from './verify';
import { metrics, noteVerificationFailure } from '../observability/metrics';

/** What a download runs with; the caller holds the target's lock. */
export interface DownloadContext {
  storage: BlockStores;
  /** The datastore, where earlier versions to copy blocks from are found. */
  root: string;
  concurrency: number;
  signal: AbortSignal;
  onProgress: (progress: DownloadProgress) => void;
  log: StepLog;
  /** The keys this agent trusts (VMHUB_TRUSTED_KEYS): the only signers whose bytes it deploys. */
  trusted: readonly TrustedKey[];
  /** The attempt this is, for the log. */
  attempt: number;
  /** The agent's own OVF policy, when its environment sets one. */
  ovf?: AgentOvfPolicy;
  /**
   * Told of each attempt at a source, once its provenance verified: what it returns is told how far the
   * partial file holds the version's bytes in order, as they land (a content-library deploy streams them on).
   * It reads every byte from the start and hands each to `verify` in order: the file is verified from the
   * bytes it read, not read again, so what it sends on is what verified.
   */
  follow?: (partial: string, provenance: Provenance, verify: (bytes: Buffer) => Promise<void>) => Promise<WrittenFollower>;
}

/** Follows the bytes written to the partial file from its start. */
export interface WrittenFollower {
  advanceTo(bytes: number): void;
  /** Settles when the follower ends; its failure stops the download, whose bytes it can no longer use. */
  readonly done: Promise<void>;
}

export class NoSourceDelivered extends Error {
  constructor(
    message: string,
    /** Only an unreachable source may answer on a later attempt; missing or wrong bytes stay so. */
    readonly retryable: boolean,
  ) {
    super(message);
  }
}

type Fetched = Pick<DownloadOutput, 'bytesFetched' | 'bytesResumed' | 'bytesReusedLocally'>;

/**
 * Puts the version at `paths.final` from the first source that delivers it, unless a copy of the signed
 * bytes is there already. Each source's signed provenance (read from that source, verified with this
 * agent's keys) decides what its bytes must hash to; a version unsigned, signed by no trusted key or not
 * as the task says is refused at once, typed. Every source rejected otherwise is added to `failures`;
 * when none delivers, NoSourceDelivered.
 */
export async function downloadFromSources(
  ctx: DownloadContext,
  input: DownloadInput,
  paths: DeploymentPaths,
  failures: SourceFailure[],
): Promise<DownloadOutput> {
  const result = { path: paths.final, bytes: input.sizeBytes, sourceFailures: failures };
  for (const source of input.sources) {
    try {
      const signed = await signedAtSource(ctx, source, input);
      // Present means its bytes were hashed again and are the signed ones: a `.sha256` file proves nothing.
      if (await presentAsSigned(paths.final, input.format, signed.provenance)) {
        // A copy made before the agent's policy was set is judged again from its bytes.
        if (ctx.ovf)
          checkAgentPolicy(ctx.ovf, input.format, await inspectFile(paths.final, input.format, ctx.ovf.inspect), input.sddc);
        await keepEnvelope(paths, signed.envelope);
        await discardPartial(paths);
        return { ...result, status: 'already-present', source: null, bytesFetched: 0, bytesResumed: 0, bytesReusedLocally: 0 };
      }
      // Whatever holds the final name is not this version: it goes before the new digest is written.
      await fs.promises.rm(paths.final, { force: true });
      // Blocks copied from an earlier version are checked one by one; should the whole file still not
      // verify, the same source is read again in full before it is judged.
      const fetched = await tracedFetch(ctx, source, input, paths, true, signed).catch((err: unknown) => {
        if (!(err instanceof LocalCopyMismatch)) throw err;
        ctx.log.warn('the file built from an earlier version did not verify; downloading it in full', { reason: err.message });
        return tracedFetch(ctx, source, input, paths, false, signed);
      });
      return { ...result, status: 'deployed', source: source.location, ...fetched };
    } catch (err) {
      // Refused by its signed provenance: final, and nothing of the download stays on disk.
      if (isProvenanceFailure(err)) await discardPartial(paths);
      if (!(err instanceof SourceProblem)) throw err;
      ctx.log.warn('source rejected, trying the next', { location: source.location, status: err.status, reason: err.message });
      failures.push({ location: source.location, status: err.status, reason: err.message });
    }
  }
  throw new NoSourceDelivered(
    `no source could deliver ${input.image}@${input.version}: ${failures.map((f) => `${f.location} ${f.reason}`).join('; ')}`,
    failures.some((f) => f.status === 'unreachable'),
  );
}

function isProvenanceFailure(err: unknown): boolean {
  return err instanceof VmhubError && PROVENANCE_FAILURES.includes(err.type);
}

/** The signed provenance beside the blob in this source; a source that cannot be read is unreachable. */
async function signedAtSource(ctx: DownloadContext, source: SourceCandidate, input: DownloadInput): Promise<Signed> {
  try {
    return await signedAt(ctx.storage.store(source.location), input.blob, input, ctx.trusted, ctx.signal);
  } catch (err) {
    if (err instanceof VmhubError) throw noteVerificationFailure(err);
    if (ctx.signal.aborted) throw err;
    throw new SourceProblem('unreachable', `unreachable: ${(err as Error).message.split('\n')[0]}`);
  }
}

/**
 * Stops the attempt when the follower fails, unless over what it made of the bytes (an archive it cannot
 * split): that waits for their SHA-256 verdict. Any other failure (an upload refused) ends it now.
 */
function stopOnFailure(follower: WrittenFollower | undefined, stop: AbortController): void {
  follower?.done.catch((err: unknown) => {
    if (!(err instanceof VmhubError)) stop.abort(err);
  });
}

/**
 * The file's hash (and inspection) once every byte is taken in: with a follower, once it has handed over
 * all it sent. Should the follower fail, the rest is read from the file, so that bytes which do not verify
 * are judged as such, whatever the follower made of them; over bytes that verify, its failure stands.
 */
async function hashWritten(
  verify: WrittenBytesVerifier,
  follower: WrittenFollower | undefined,
  expected: Pick<DownloadInput, 'sha256' | 'sizeBytes'>,
  signal: AbortSignal,
): Promise<Hashed> {
  const failure = await follower?.done.then(
    () => undefined,
    (err: unknown) => {
      if (signal.aborted) throw err;
      return { err };
    },
  );
  if (failure) verify.advanceTo(expected.sizeBytes);
  // The hashing thread catches up with the last bytes written: the wait a slow disk shows.
  const hashed = await inSpan('vmhub.hash', { bytes: expected.sizeBytes }, () => verify.finish(expected.sizeBytes));
  if (failure && hashed.sha256 === expected.sha256) throw failure.err;
  return hashed;
}

/** `fetchFrom` in a span that names the version, the SDDC and the source, and the bytes fetched. */
function tracedFetch(...args: Parameters<typeof fetchFrom>): Promise<Fetched> {
  const [, source, input] = args;
  const facts = { image: input.image, version: input.version, sddc: input.sddc, location: source.location };
  return inSpan('vmhub.download', facts, async (span) => {
    const fetched = await fetchFrom(...args);
    noteFacts(span, { bytes: fetched.bytesFetched });
    return fetched;
  });
}

/**
 * One source's download: checked, resumed from what is on disk, filled (parallel ranged reads into the
 * partial file; with an earlier version on disk, the file begins as the file system's copy of it and only
 * the blocks that changed or moved are written), verified, then given its final name. A source that cannot
 * deliver is a SourceProblem.
 *
 * What a delta deploy checks, and why it is enough: the signed statement (verified with this agent's keys
 * before a byte is fetched) gives the new version's SHA-256, size and, for an OVA, its members' SHA-256.
 * After the fill, one sequential read of the whole partial file on a hashing thread (or the follower's read,
 * whose bytes it hands over) computes its SHA-256 (and inspects it, hashing an OVA's members), and that must
 * equal the signed one: every byte, copied, moved or fetched, is covered, so the SHA-256 recorded beside
 * the file is that of its bytes. The read cannot be spared: SHA-256 is a chained hash, not derivable from
 * per-block digests, and the earlier version's bytes on disk may have changed since they were verified (its
 * `.sha256` proves nothing, see presentAsSigned); the per-block digests come from the store's block list,
 * which is not checked here against the signed one, and each is 128 bits of a SHA-256. What is spared is
 * every other pass over the kept bytes: no read into this process, no per-block digest, no write.
 */
async function fetchFrom(
  ctx: DownloadContext,
  source: SourceCandidate,
  input: DownloadInput,
  paths: DeploymentPaths,
  reuseLocal: boolean,
  signed: Signed,
): Promise<Fetched> {
  const { signal, log } = ctx;
  const { store, etag } = await checkSource(ctx.storage, source, input, signal);
  const { state, resumed } = await resumePartial(paths, source.location, etag, input.sizeBytes);
  const bytesResumed = bytesDone(state, input.sizeBytes);
  if (resumed) log.info('resuming download from disk', { location: source.location, bytesResumed });

  const progress = (bytes: number) =>
    ctx.onProgress({ location: source.location, bytesDone: bytes, bytesTotal: input.sizeBytes });
  progress(bytesResumed);
  let handle: fs.promises.FileHandle | undefined;
  let verifier: WrittenBytesVerifier | undefined;
  let chunkSource = ChunkSource.plain();
  let fill;
  // Reads from the source stop with the activity, and as soon as a follower of the bytes has failed.
  const followerFailed = new AbortController();
  const fetchSignal = AbortSignal.any([signal, followerFailed.signal]);
  try {
    chunkSource = await ChunkSource.open(store, input.blob, input, ctx.root, { reuse: reuseLocal, abortSignal: signal });
    await chunkSource.startFrom(paths.partial, state, log);
    if (chunkSource.base) {
      log.info('copying the blocks an earlier version shares from disk', {
        base: chunkSource.base.version,
        bytesReusable: chunkSource.reusable,
        cloned: chunkSource.isCloned,
      });
    }
    const file = await openNoFollow(paths.partial, O_RDWR | O_CREAT);
    handle = file;
    await file.truncate(input.sizeBytes);
    const verify = await WrittenBytesVerifier.open(file, input.format, ctx.ovf?.inspect);
    verifier = verify;
    const follower = await ctx.follow?.(paths.partial, signed.provenance, (bytes) => verify.take(bytes));
    // The follower, where there is one, reads what is written and hands it to the verifier.
    const reader = follower ?? verify;
    reader.advanceTo(bytesResumed);
    stopOnFailure(follower, followerFailed);
    const downloaded = { image: input.image, sddc: input.sddc };
    const fetch = async (start: number, length: number) => {
      await streamRange(store, input.blob, file, start, length, fetchSignal);
      metrics.downloadedBytes.inc(downloaded, length);
    };
    fill = await fetchChunks({
      handle: file,
      paths,
      state,
      chunkSource,
      fetch,
      sizeBytes: input.sizeBytes,
      concurrency: ctx.concurrency,
      onWritten: (bytes) => {
        reader.advanceTo(bytes);
        progress(bytes);
      },
    }).catch((err: unknown) => {
      // The follower's failure, not the abort it caused, says why the attempt ended.
      throw followerFailed.signal.aborted && !signal.aborted ? followerFailed.signal.reason : err;
    });
    let hashed = await hashWritten(verify, follower, input, signal);
    // A repair would rewrite bytes a follower has sent already: with one, the file is downloaded again instead.
    if (hashed.sha256 !== input.sha256 && chunkSource.isCloned && !follower) {
      const repaired = await repairKeptBlocks(file, chunkSource.keptBlocks(), fetch, { ...input, inspect: ctx.ovf?.inspect });
      if (repaired) {
        const bytes = repaired.refetched.reduce((sum, b) => sum + b.end - b.start, 0);
        log.warn('blocks kept from the earlier version no longer matched their digests; fetched them again', {
          base: chunkSource.base?.version,
          blocks: repaired.refetched.length,
          bytes,
        });
        hashed = repaired.hashed;
        fill = { fetched: fill.fetched + bytes, reused: fill.reused - bytes };
      }
    }
    const metadata = await verifyDownload(
      hashed,
      input,
      paths,
      { bytesReused: fill.reused, baseVersion: chunkSource.base?.version },
      signed.provenance,
    );
    try {
      checkAgentPolicy(ctx.ovf, input.format, metadata, input.sddc);
    } catch (err) {
      await discardPartial(paths);
      throw err;
    }
    // The copy of the base is made durable here too: the rename below must not outrun any of its bytes.
    await file.sync();
  } finally {
    // The hashing thread reads through this handle's descriptor: it lets go of it before the handle closes.
    await verifier?.close();
    await handle?.close();
    await chunkSource.close();
  }
  // The envelope stays beside the copy: the import checks the copy against it again.
  await keepEnvelope(paths, signed.envelope);
  await finalizeDownload(paths, input.sha256, chunkSource.index);
  log.info('deployed', {
    image: input.image,
    version: input.version,
    location: source.location,
    bytesFetched: fill.fetched,
    bytesResumed,
    bytesReusedLocally: fill.reused,
    bytesReadFromBase: chunkSource.readFromBase,
    blocksNotMatching: chunkSource.mismatches,
    attempt: ctx.attempt,
  });
  return { bytesFetched: fill.fetched, bytesResumed, bytesReusedLocally: fill.reused };
}
