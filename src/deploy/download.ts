import fs from 'node:fs';
import { O_CREAT, O_RDWR, openNoFollow } from '../datastore/files';
import { discardPartial, type DeploymentPaths } from '../datastore/layout';
import type { TrustedKey } from '../provenance/keys';
import { VmhubError } from '../shared/errors';
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
import { checkAgentPolicy, inspectFile, type AgentOvfPolicy } from './ovf-check';
import { finalizeDownload } from './finalize';
import { ChunkSource } from './local-copy';
import { bytesDone, resumePartial } from './partial-state';
import { keepEnvelope, presentAsSigned, signedAt, type Signed } from './provenance-check';
import type { SourceCandidate } from './placement';
import { checkSource } from './source-check';
import { verifyDownload, WrittenBytesVerifier } from './verify';

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
      const fetched = await fetchFrom(ctx, source, input, paths, true, signed).catch((err: unknown) => {
        if (!(err instanceof LocalCopyMismatch)) throw err;
        ctx.log.warn('the file built from an earlier version did not verify; downloading it in full', { reason: err.message });
        return fetchFrom(ctx, source, input, paths, false, signed);
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

const PROVENANCE_FAILURES: readonly string[] = ['UnsignedImage', 'UntrustedSignature', 'ProvenanceMismatch'];

function isProvenanceFailure(err: unknown): boolean {
  return err instanceof VmhubError && PROVENANCE_FAILURES.includes(err.type);
}

/** The signed provenance beside the blob in this source; a source that cannot be read is unreachable. */
async function signedAtSource(ctx: DownloadContext, source: SourceCandidate, input: DownloadInput): Promise<Signed> {
  try {
    return await signedAt(ctx.storage.store(source.location), input.blob, input, ctx.trusted, ctx.signal);
  } catch (err) {
    if (ctx.signal.aborted || err instanceof VmhubError) throw err;
    throw new SourceProblem('unreachable', `unreachable: ${(err as Error).message.split('\n')[0]}`);
  }
}

/**
 * One source's download: checked, resumed from what is on disk, filled (parallel ranged reads into the
 * partial file, blocks an earlier version shares copied from disk), verified as it is written, then given
 * its final name. A source that cannot deliver is a SourceProblem.
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

  const handle = await openNoFollow(paths.partial, O_RDWR | O_CREAT);
  const progress = (bytes: number) =>
    ctx.onProgress({ location: source.location, bytesDone: bytes, bytesTotal: input.sizeBytes });
  progress(bytesResumed);
  let verifier: WrittenBytesVerifier | undefined;
  let chunkSource = ChunkSource.plain();
  let fill;
  try {
    chunkSource = await ChunkSource.open(store, input.blob, input, ctx.root, { reuse: reuseLocal, abortSignal: signal });
    if (chunkSource.base) {
      log.info('copying the blocks an earlier version shares from disk', {
        base: chunkSource.base.version,
        bytesReusable: chunkSource.reusable,
      });
    }
    await handle.truncate(input.sizeBytes);
    const verify = await WrittenBytesVerifier.open(handle, input.format, ctx.ovf?.inspect);
    verifier = verify;
    verify.advanceTo(bytesResumed);
    fill = await fetchChunks({
      store,
      blob: input.blob,
      sizeBytes: input.sizeBytes,
      handle,
      paths,
      state,
      chunkSource,
      concurrency: ctx.concurrency,
      signal,
      onWritten: (bytes) => {
        verify.advanceTo(bytes);
        progress(bytes);
      },
    });
    const metadata = await verifyDownload(
      verify,
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
    await handle.sync();
  } finally {
    // The hashing thread reads through this handle's descriptor: it lets go of it before the handle closes.
    await verifier?.close();
    await handle.close();
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
    blocksNotMatching: chunkSource.mismatches,
    attempt: ctx.attempt,
  });
  return { bytesFetched: fill.fetched, bytesResumed, bytesReusedLocally: fill.reused };
}
