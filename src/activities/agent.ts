import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { activityInfo, ApplicationFailure, cancellationDetails, heartbeat, log } from '@temporalio/activity';
import { runPool } from '../concurrency';
import type { Config } from '../config';
import { blockIndexPath } from '../deploy/block-index';
import { ChunkSource } from '../deploy/local-copy';
import type { SourceCandidate } from '../deploy/placement';
import { VmhubError } from '../errors';
import { BLOB_EXTENSIONS, formatOf, IMAGE_FORMATS, type ImageFormat } from '../images/format';
import { validateImageName, validateSddcName, validateVersion } from '../names';
import { isBlockStoreError, type BlockStore, type BlockStores } from '../storage/block-store';
import { hashPool, type ImageStream } from '../storage/hashing';
import { formatBytes } from '../units';
import { transferSignal } from './transfer-signal';

/** An SDDC agent: its activities run on the SDDC's own task queue and write only into its own datastore. */
export interface AgentDeps {
  storage: BlockStores;
  config: Config;
  /** The SDDC this agent serves; it takes downloads for no other. */
  sddc: string;
}

/** A published version as a deployment needs it: what to fetch and what its bytes must hash to. */
export interface ImageToDeploy {
  image: string;
  version: string;
  format: ImageFormat;
  sha256: string;
  sizeBytes: number;
  blob: string;
}

/** What to deploy; where it goes on disk is the agent's own business (VMHUB_DATASTORE). */
export interface DownloadInput extends ImageToDeploy {
  sddc: string;
  sources: SourceCandidate[];
}

export interface SourceFailure {
  location: string;
  /** `unreachable` is transient: the source is skipped for this download but not marked in the catalog. */
  status: 'stale' | 'failed' | 'unreachable';
  reason: string;
}

export interface DownloadOutput {
  status: 'deployed' | 'already-present';
  source: string | null;
  path: string;
  bytes: number;
  /** Bytes fetched by this attempt, and bytes found already on disk from an earlier one. */
  bytesFetched: number;
  bytesResumed: number;
  /** Bytes copied from an earlier version on disk (delta deploy); agents from before delta deploys leave it out. */
  bytesReusedLocally?: number;
  sourceFailures: SourceFailure[];
}

/** Progress of a download kept beside the partial file, so a new agent resumes from what is on disk. */
interface PartialState {
  location: string;
  etag: string;
  sizeBytes: number;
  chunkSize: number;
  doneBelow: number;
}

const CHUNK = 8 * 1024 * 1024;
/** Progress on disk is made durable after this many bytes, and after a second at the latest. */
const CHECKPOINT_BYTES = 64 * 1024 * 1024;
/**
 * A chunk's bytes are gathered into writes of about this much as they arrive: few system calls, little
 * held per lane, and no larger: for a larger write the kernel takes large page-cache folios, and on a
 * virtual machine that hands free memory back to its host those cost several times more to fill (a 1 GiB
 * download spent seconds of system time in 8 MiB writes, under half a second in 1 MiB ones).
 */
const WRITE_PIECE = 1024 * 1024;
const { O_CREAT, O_DIRECTORY, O_EXCL, O_NOFOLLOW, O_RDONLY, O_RDWR, O_TRUNC, O_WRONLY } = fs.constants;

/** Checks a download request again on the agent: it decides paths, so it trusts no name it did not check. */
export function checkDownloadInput(input: DownloadInput, sddc: string): void {
  validateSddcName(input.sddc);
  if (input.sddc !== sddc) throw new VmhubError('InvalidInput', `this agent serves SDDC ${sddc}, not ${input.sddc}`);
  validateImageName(input.image);
  validateVersion(input.version);
  if (!IMAGE_FORMATS.includes(input.format)) {
    throw new VmhubError('InvalidInput', `format ${JSON.stringify(input.format)} is not one of ${IMAGE_FORMATS.join(', ')}`);
  }
  if (typeof input.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(input.sha256)) {
    throw new VmhubError('InvalidInput', `sha256 ${JSON.stringify(input.sha256)} is not 64 lowercase hex digits`);
  }
  if (!Number.isSafeInteger(input.sizeBytes) || input.sizeBytes < 0) {
    throw new VmhubError('InvalidInput', `sizeBytes ${JSON.stringify(input.sizeBytes)} is not a byte count`);
  }
}

/**
 * Creates `<root>/<image>/<version>` one level at a time and refuses a level whose real path is not where
 * it should be (a symlink), so nothing is ever created or written through a link, inside the root or out.
 */
export async function deploymentDir(root: string, image: string, version: string): Promise<string> {
  await fs.promises.mkdir(root, { recursive: true });
  let dir = await fs.promises.realpath(root);
  for (const name of [image, version]) {
    dir = path.join(dir, name);
    await fs.promises.mkdir(dir).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'EEXIST') throw err;
    });
    const real = await fs.promises.realpath(dir).catch(() => undefined);
    if (real !== dir) {
      throw new VmhubError(
        'InvalidInput',
        `${dir} is a link (to ${real ?? 'nowhere'}); the agent writes only into real directories of its datastore`,
      );
    }
  }
  return dir;
}

export function deploymentPaths(dir: string, image: string, version: string, format: ImageFormat) {
  const file = `${image}-${version}.${BLOB_EXTENSIONS[format]}`;
  return {
    dir,
    final: path.join(dir, file),
    partial: path.join(dir, `.${file}.partial`),
    state: path.join(dir, `.${file}.partial.json`),
    /** The next checkpoint, renamed over `state` once written: a kill never leaves a checkpoint half-written. */
    stateNext: path.join(dir, `.${file}.partial.json.next`),
    lock: path.join(dir, `.${file}.lock`),
    digest: path.join(dir, `${file}.sha256`),
  };
}

type DeploymentPaths = ReturnType<typeof deploymentPaths>;

/** Writes all of buf at position: a write may take fewer bytes than asked, so it goes on from where that one stopped. */
export async function writeFully(
  handle: Pick<fs.promises.FileHandle, 'write'>,
  buf: Uint8Array,
  position: number,
): Promise<void> {
  for (let done = 0; done < buf.length;) {
    const { bytesWritten } = await handle.write(buf, done, buf.length - done, position + done);
    if (bytesWritten <= 0) throw new Error(`write at offset ${position + done} wrote nothing`);
    done += bytesWritten;
  }
}

/** Writes all of buffers, in order, from position: one gathering write, then piece by piece for what it left. */
export async function writevFully(
  handle: Pick<fs.promises.FileHandle, 'write' | 'writev'>,
  buffers: Buffer[],
  position: number,
): Promise<void> {
  let skip = (await handle.writev(buffers, position)).bytesWritten;
  let at = position;
  for (const buf of buffers) {
    if (skip < buf.length) await writeFully(handle, buf.subarray(skip), at + skip);
    skip = Math.max(0, skip - buf.length);
    at += buf.length;
  }
}

/** Opens a file in the datastore without following a link at its name. */
async function openNoFollow(file: string, flags: number): Promise<fs.promises.FileHandle> {
  try {
    return await fs.promises.open(file, flags | O_NOFOLLOW, 0o644);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ELOOP') {
      throw new VmhubError('InvalidInput', `${file} is a link; the agent does not follow links in its datastore`);
    }
    throw err;
  }
}

/** A small file's text, or undefined when there is none. */
async function readNoFollow(file: string): Promise<string | undefined> {
  const handle = await openNoFollow(file, O_RDONLY).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (!handle) return undefined;
  try {
    return await handle.readFile('utf8');
  } finally {
    await handle.close();
  }
}

async function writeNoFollow(file: string, text: string, flags: number, durable: boolean): Promise<void> {
  const handle = await openNoFollow(file, O_WRONLY | O_CREAT | flags);
  try {
    await writeFully(handle, Buffer.from(text), 0);
    if (durable) await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Refuses a download the filesystem has no room for, rather than failing with a full disk half-way. */
export function checkFreeSpace(stats: { bavail: number; bsize: number }, neededBytes: number, dir: string): void {
  const available = stats.bavail * stats.bsize;
  if (available < neededBytes) {
    throw new VmhubError(
      'InsufficientSpace',
      `${dir} has ${formatBytes(available)} free; the download needs ${formatBytes(neededBytes)} more`,
    );
  }
}

/** Who holds a download lock. `process` tells this process from an earlier one that had the same pid. */
export interface LockHolder {
  pid: number;
  process: string;
  activityId: string;
  workflowId?: string;
  since: string;
}

const THIS_PROCESS = randomUUID();

export function lockHolder(activityId: string, workflowId?: string): LockHolder {
  return { pid: process.pid, process: THIS_PROCESS, activityId, workflowId, since: new Date().toISOString() };
}

export function holderAlive(holder: LockHolder): boolean {
  if (holder.pid === process.pid) return holder.process === THIS_PROCESS;
  try {
    process.kill(holder.pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export type LockOutcome = { acquired: true; tookOverFrom?: string } | { acquired: false; holder: LockHolder };

/**
 * Takes the lock of one target file, or says which live holder has it. The holder is written to a file of
 * its own (O_CREAT|O_EXCL) and linked to the lock's name, so a lock never exists half-written. A lock whose
 * holder is dead is renamed aside before it is removed: of two agents taking it over at once only the one
 * that renamed it removes it, and a lock that changed in between is put back and judged again. Inside one
 * process, locks are taken and released one at a time, so its own activities never race on them.
 */
export function acquireLock(lock: string, holder: LockHolder): Promise<LockOutcome> {
  return oneAtATime(async () => {
    const own = `${lock}.${randomUUID()}`;
    await writeNoFollow(own, JSON.stringify(holder), O_EXCL, false);
    let tookOverFrom: string | undefined;
    try {
      for (;;) {
        try {
          await fs.promises.link(own, lock);
          return { acquired: true, tookOverFrom };
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        }
        const seen = await readNoFollow(lock);
        if (seen === undefined) continue;
        const other = parseHolder(seen);
        if (other && holderAlive(other)) return { acquired: false, holder: other };
        const aside = `${own}.stale`;
        try {
          await fs.promises.rename(lock, aside);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
          throw err;
        }
        if ((await fs.promises.readFile(aside, 'utf8')) === seen) tookOverFrom = seen;
        else await fs.promises.link(aside, lock).catch(() => undefined);
        await fs.promises.rm(aside, { force: true });
      }
    } finally {
      await fs.promises.rm(own, { force: true });
    }
  });
}

/** Removes the lock if it is still this holder's. */
export function releaseLock(lock: string, holder: LockHolder): Promise<void> {
  return oneAtATime(async () => {
    if ((await readNoFollow(lock)) === JSON.stringify(holder)) await fs.promises.rm(lock, { force: true });
  });
}

let lockTurn: Promise<unknown> = Promise.resolve();

function oneAtATime<T>(fn: () => Promise<T>): Promise<T> {
  const turn = lockTurn.then(fn);
  lockTurn = turn.catch(() => undefined);
  return turn;
}

function parseHolder(text: string): LockHolder | undefined {
  try {
    const h = JSON.parse(text) as LockHolder;
    return Number.isInteger(h.pid) && typeof h.process === 'string' ? h : undefined;
  } catch {
    return undefined;
  }
}

async function discardPartial(paths: DeploymentPaths): Promise<void> {
  await Promise.all([paths.partial, paths.state, paths.stateNext].map((file) => fs.promises.rm(file, { force: true })));
}

/** A file partly copied from an earlier version failed the SHA-256: no verdict on the source yet. */
class LocalCopyMismatch extends Error {}

class SourceProblem extends Error {
  constructor(
    readonly status: SourceFailure['status'],
    message: string,
  ) {
    super(message);
  }
}

export function createAgentActivities({ storage, config, sddc }: AgentDeps) {
  // The agent's own configuration says where it writes; nothing in a task does.
  const root = config.datastore ?? path.join(config.dataDir, 'sddc', sddc);
  return {
    /**
     * Downloads an image into `<datastore>/<image>/<version>/` from the first good source: parallel ranged
     * reads into a partial file, resumed from what is on disk after a crash, then the SHA-256 (and an OVA's
     * manifest) checked before an atomic rename to the final name. A source that is missing, stale,
     * unreachable or yields bad bytes is reported and the next one is tried. One download per target at a
     * time; a cancel removes the partial file.
     */
    async downloadImage(input: DownloadInput): Promise<DownloadOutput> {
      const failures: SourceFailure[] = [];
      try {
        checkDownloadInput(input, sddc);
        const dir = await deploymentDir(root, input.image, input.version);
        const paths = deploymentPaths(dir, input.image, input.version, input.format);
        const info = activityInfo();
        const holder = lockHolder(info.activityId, info.workflowExecution?.workflowId);
        const lock = await acquireLock(paths.lock, holder);
        if (!lock.acquired) {
          const { pid, activityId, workflowId } = lock.holder;
          throw ApplicationFailure.retryable(
            `${paths.final} is being downloaded by pid ${pid} (activity ${activityId} of ${workflowId ?? 'no workflow'})`,
            'DownloadInProgress',
          );
        }
        if (lock.tookOverFrom) log.warn('took over the lock of a download whose agent is gone', { lock: lock.tookOverFrom });
        try {
          return await downloadLocked(input, paths, failures);
        } catch (err) {
          const signal = transferSignal(config.transferConcurrency);
          if (!signal.aborted) throw err;
          // Only a cancel the workflow asked for drops the work done: a shutdown or timeout resumes it.
          if (cancellationDetails()?.cancelRequested) {
            await discardPartial(paths);
            log.info('download cancelled; partial file removed', { path: paths.partial });
          }
          // The SDK aborts the signal with the CancelledFailure it expects back.
          throw signal.reason;
        } finally {
          await releaseLock(paths.lock, holder);
        }
      } catch (err) {
        if (err instanceof VmhubError) throw ApplicationFailure.nonRetryable(err.message, err.type, failures);
        throw err;
      }
    },

    /**
     * After a deploy was cancelled while no download attempt ran (between retries, or with the agent
     * down): removes what an earlier attempt left, unless a live download holds the target's lock.
     */
    async discardDownload(input: DownloadInput): Promise<{ removed: boolean }> {
      try {
        checkDownloadInput(input, sddc);
        const dir = await deploymentDir(root, input.image, input.version);
        const paths = deploymentPaths(dir, input.image, input.version, input.format);
        const holder = lockHolder(activityInfo().activityId, activityInfo().workflowExecution?.workflowId);
        const lock = await acquireLock(paths.lock, holder);
        if (!lock.acquired) return { removed: false };
        try {
          await discardPartial(paths);
          return { removed: true };
        } finally {
          await releaseLock(paths.lock, holder);
        }
      } catch (err) {
        if (err instanceof VmhubError) throw ApplicationFailure.nonRetryable(err.message, err.type);
        throw err;
      }
    },
  };

  async function downloadLocked(
    input: DownloadInput,
    paths: DeploymentPaths,
    failures: SourceFailure[],
  ): Promise<DownloadOutput> {
    const result = { path: paths.final, bytes: input.sizeBytes, sourceFailures: failures };
    const final = await fs.promises.lstat(paths.final).catch(() => undefined);
    if (final?.isFile() && final.size === input.sizeBytes) {
      if ((await readNoFollow(paths.digest))?.split(/\s/)[0] === input.sha256) {
        await discardPartial(paths);
        return { ...result, status: 'already-present', source: null, bytesFetched: 0, bytesResumed: 0, bytesReusedLocally: 0 };
      }
    }
    // Whatever holds the final name is not this version: it goes before the new digest is written.
    if (final) await fs.promises.rm(paths.final, { force: true });
    for (const source of input.sources) {
      try {
        // Blocks copied from an earlier version are checked one by one; should the whole file still not
        // verify, the same source is read again in full before it is judged.
        const fetched = await fetchFrom(source, input, paths, true).catch((err: unknown) => {
          if (!(err instanceof LocalCopyMismatch)) throw err;
          log.warn('the file built from an earlier version did not verify; downloading it in full', { reason: err.message });
          return fetchFrom(source, input, paths, false);
        });
        return { ...result, status: 'deployed', source: source.location, ...fetched };
      } catch (err) {
        if (!(err instanceof SourceProblem)) throw err;
        log.warn('source rejected, trying the next', { location: source.location, status: err.status, reason: err.message });
        failures.push({ location: source.location, status: err.status, reason: err.message });
      }
    }
    // Only an unreachable source may answer on a later attempt; missing or wrong bytes stay so.
    throw ApplicationFailure.create({
      message: `no source could deliver ${input.image}@${input.version}: ${failures.map((f) => `${f.location} ${f.reason}`).join('; ')}`,
      type: 'NoSource',
      nonRetryable: !failures.some((f) => f.status === 'unreachable'),
      details: [failures],
    });
  }

  async function fetchFrom(
    source: SourceCandidate,
    input: DownloadInput,
    paths: DeploymentPaths,
    reuseLocal: boolean,
  ): Promise<{ bytesFetched: number; bytesResumed: number; bytesReusedLocally: number }> {
    const signal = transferSignal(config.transferConcurrency);
    let store;
    let props;
    try {
      // A location this agent's topology does not know (added on the control plane first) is passed over.
      store = storage.store(source.location);
      props = await store.getProperties(input.blob, { abortSignal: signal });
    } catch (err) {
      if (signal.aborted) throw err;
      if (isBlockStoreError(err, 'not-found')) throw new SourceProblem('failed', 'blob is missing');
      throw new SourceProblem('unreachable', `unreachable: ${(err as Error).message.split('\n')[0]}`);
    }
    if (props.contentLength !== input.sizeBytes || props.metadata.sha256 !== input.sha256) {
      throw new SourceProblem(
        'stale',
        `holds other bytes (size ${props.contentLength}, sha256 ${props.metadata.sha256 ?? 'unset'})`,
      );
    }
    if (source.etag && props.etag !== source.etag)
      throw new SourceProblem('stale', `changed since it was verified (etag ${props.etag})`);

    const previous = parseState(await readNoFollow(paths.state));
    const partial = await fs.promises.lstat(paths.partial).catch(() => undefined);
    const resumable =
      previous?.location === source.location &&
      previous.etag === props.etag &&
      previous.chunkSize === CHUNK &&
      partial?.isFile() === true;
    if (!resumable) await discardPartial(paths);
    const state: PartialState = resumable
      ? previous
      : { location: source.location, etag: props.etag, sizeBytes: input.sizeBytes, chunkSize: CHUNK, doneBelow: 0 };
    const bytesResumed = Math.min(state.doneBelow * CHUNK, input.sizeBytes);
    const allocated = resumable ? partial.blocks * 512 : 0;
    checkFreeSpace(await fs.promises.statfs(paths.dir), Math.max(0, input.sizeBytes - allocated), paths.dir);
    if (resumable) log.info('resuming download from disk', { location: source.location, bytesResumed });

    const handle = await openNoFollow(paths.partial, O_RDWR | O_CREAT);
    let bytesFetched = 0;
    let bytesReusedLocally = 0;
    const beat = () =>
      heartbeat({
        sddc,
        phase: 'downloading',
        location: source.location,
        bytesDone: Math.min(state.doneBelow * CHUNK, input.sizeBytes),
        bytesTotal: input.sizeBytes,
      });
    const keepAlive = setInterval(beat, 5_000);
    let verifying: ImageStream | undefined;
    let chunkSource = ChunkSource.plain();
    try {
      chunkSource = await ChunkSource.open(store, input.blob, input, root, { reuse: reuseLocal, abortSignal: signal });
      if (chunkSource.base) {
        log.info('copying the blocks an earlier version shares from disk', {
          base: chunkSource.base.version,
          bytesReusable: chunkSource.reusable,
        });
      }
      await handle.truncate(input.sizeBytes);
      const chunks = Math.ceil(input.sizeBytes / CHUNK);
      const done = new Set<number>();
      const pending: number[] = [];
      for (let i = state.doneBelow; i < chunks; i++) pending.push(i);
      // Record progress only once the bytes below it are on disk; one checkpoint at a time, in order.
      let lastCheckpoint = { at: Date.now(), doneBelow: state.doneBelow };
      let checkpoints = Promise.resolve();
      const checkpoint = () => {
        const doneBelow = state.doneBelow;
        lastCheckpoint = { at: Date.now(), doneBelow };
        return (checkpoints = checkpoints.then(async () => {
          await handle.datasync();
          await writeNoFollow(paths.stateNext, JSON.stringify({ ...state, doneBelow }), O_TRUNC, false);
          await fs.promises.rename(paths.stateNext, paths.state);
        }));
      };
      const checkpointDue = () =>
        Date.now() - lastCheckpoint.at > 1_000 || (state.doneBelow - lastCheckpoint.doneBelow) * CHUNK >= CHECKPOINT_BYTES;
      // The bytes are verified in order as they reach the file: a hashing thread reads them back from
      // the page cache, so the lanes hold no chunk in memory and never wait for verification, and what
      // an earlier attempt left on disk is verified the same way.
      const verify = await hashPool().openStream(formatOf(input.format).inspectOnDeploy ? input.format : undefined);
      verifying = verify;
      let verifiedTo = 0;
      let verification = Promise.resolve();
      const verifyWritten = () => {
        const to = Math.min(state.doneBelow * CHUNK, input.sizeBytes);
        if (to === verifiedTo) return;
        const pushed = verify.pushFile(handle.fd, verifiedTo, to - verifiedTo);
        verifiedTo = to;
        verification = Promise.all([verification, pushed]).then(() => undefined);
        verification.catch(() => undefined); // a failure surfaces at the last call
      };
      verifyWritten();

      await runPool(pending, config.transferConcurrency, async (i) => {
        const offset = i * CHUNK;
        const count = Math.min(CHUNK, input.sizeBytes - offset);
        const fill = await chunkSource.fill(
          offset,
          offset + count,
          (start, length) => streamRange(store, input.blob, handle, start, length, signal),
          (bytes, at) => writeFully(handle, bytes, at),
        );
        bytesFetched += fill.fetched;
        bytesReusedLocally += fill.reused;
        done.add(i);
        while (done.has(state.doneBelow)) done.delete(state.doneBelow++);
        verifyWritten();
        beat();
        // The next lane does not wait for the disk: a failed checkpoint surfaces at the last one.
        if (checkpointDue()) checkpoint().catch(() => undefined);
      });
      await checkpoint();
      await verification;
      if (verifiedTo !== input.sizeBytes) throw new Error(`verified ${verifiedTo} of ${input.sizeBytes} bytes`);

      // The SHA-256 decides whether the source gave the right bytes; only then does an OVA's own
      // verdict (manifest, structure) count, and that one is final.
      const { sha256, invalid } = await verify.finish();
      if (sha256 !== input.sha256) {
        await discardPartial(paths);
        if (bytesReusedLocally > 0) throw new LocalCopyMismatch(`built with ${chunkSource.base?.version}, SHA-256 ${sha256}`);
        throw new SourceProblem('failed', `yielded bytes with SHA-256 ${sha256}, expected ${input.sha256}`);
      }
      if (invalid !== undefined) {
        await discardPartial(paths);
        throw invalid instanceof VmhubError
          ? invalid
          : new VmhubError('InvalidImage', `image fails verification: ${(invalid as Error).message}`);
      }
      await handle.sync();
    } finally {
      clearInterval(keepAlive);
      // The hashing thread reads through this handle's descriptor: it lets go of it before the handle closes.
      await verifying?.close();
      await handle.close();
      await chunkSource.close();
    }
    // The digest is durable before the final name appears, and the rename is durable before the state goes.
    await writeNoFollow(paths.digest, `${input.sha256}  ${path.basename(paths.final)}\n`, O_TRUNC, true);
    await fs.promises.rename(paths.partial, paths.final);
    const dir = await fs.promises.open(paths.dir, O_RDONLY | O_DIRECTORY);
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
    await fs.promises.rm(paths.state, { force: true });
    // The index makes this version a base for the next one; without it, it is only not one.
    if (chunkSource.index) {
      await writeNoFollow(blockIndexPath(paths.final), JSON.stringify(chunkSource.index), O_TRUNC, false);
    }
    log.info('deployed', {
      image: input.image,
      version: input.version,
      location: source.location,
      bytesFetched,
      bytesResumed,
      bytesReusedLocally,
      blocksNotMatching: chunkSource.mismatches,
      attempt: activityInfo().attempt,
    });
    return { bytesFetched, bytesResumed, bytesReusedLocally };
  }
}

/**
 * Streams the `count` bytes at `offset` of a blob into the file at the same offset as they arrive,
 * gathered into writes of about WRITE_PIECE: the lane never holds the chunk whole. A read that fails or
 * ends early is the source's problem; a failed write is the agent's own and is thrown as it is.
 */
async function streamRange(
  store: BlockStore,
  blob: string,
  handle: fs.promises.FileHandle,
  offset: number,
  count: number,
  signal: AbortSignal,
): Promise<void> {
  const unreachable = (err: unknown) => {
    if (signal.aborted) return err;
    return new SourceProblem('unreachable', `unreachable while reading: ${(err as Error).message.split('\n')[0]}`);
  };
  let body: AsyncIterator<Buffer>;
  try {
    // One request per chunk, resumed from where it broke off.
    body = (await store.readStream(blob, offset, count, { abortSignal: signal }))[Symbol.asyncIterator]();
  } catch (err) {
    throw unreachable(err);
  }
  let written = 0;
  let ended = false;
  try {
    const gathered: Buffer[] = [];
    let size = 0;
    for (;;) {
      let next: IteratorResult<Buffer>;
      try {
        next = await body.next();
      } catch (err) {
        throw unreachable(err);
      }
      ended = next.done === true;
      if (!ended) {
        gathered.push(next.value);
        size += next.value.length;
        if (written + size > count) throw new SourceProblem('unreachable', `range at ${offset} sent more than ${count} bytes`);
      }
      if (size > 0 && (ended || size >= WRITE_PIECE)) {
        await writevFully(handle, gathered.splice(0), offset + written);
        written += size;
        size = 0;
      }
      if (ended) break;
    }
  } finally {
    // Leaving early (a failed write, a cancel) closes the response rather than reading it to its end.
    if (!ended) await body.return?.().catch(() => undefined);
  }
  if (written !== count) throw new SourceProblem('unreachable', `range at ${offset} ended after ${written} of ${count} bytes`);
}

function parseState(text: string | undefined): PartialState | undefined {
  try {
    return text === undefined ? undefined : (JSON.parse(text) as PartialState);
  } catch {
    return undefined;
  }
}

export type AgentActivities = ReturnType<typeof createAgentActivities>;
