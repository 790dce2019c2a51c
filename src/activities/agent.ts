import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { activityInfo, ApplicationFailure, cancellationSignal, heartbeat, log } from '@temporalio/activity';
import { RestError } from '@azure/storage-blob';
import { runPool } from '../concurrency';
import type { Config } from '../config';
import type { SourceCandidate } from '../deploy/placement';
import { VmhubError } from '../errors';
import { BLOB_EXTENSIONS, type ImageFormat } from '../images/format';
import { createInspector } from '../images/inspect';
import type { StorageClients } from '../storage/clients';

/** Activities of an SDDC agent: they run on the SDDC's own task queue and write into its datastore. */
export interface AgentDeps {
  storage: StorageClients;
  config: Config;
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

export interface DownloadInput extends ImageToDeploy {
  sddc: string;
  datastore: string;
  sources: SourceCandidate[];
}

export interface SourceFailure {
  location: string;
  status: 'stale' | 'failed';
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

export function deploymentPaths(datastore: string, image: string, version: string, format: ImageFormat) {
  const dir = path.join(datastore, image, version);
  const file = `${image}-${version}.${BLOB_EXTENSIONS[format]}`;
  return {
    dir,
    final: path.join(dir, file),
    partial: path.join(dir, `.${file}.partial`),
    state: path.join(dir, `.${file}.partial.json`),
    digest: path.join(dir, `${file}.sha256`),
  };
}

function readJson<T>(file: string): T | undefined {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

class SourceProblem extends Error {
  constructor(
    readonly status: SourceFailure['status'],
    message: string,
  ) {
    super(message);
  }
}

export function createAgentActivities({ storage, config }: AgentDeps) {
  return {
    /**
     * Downloads an image into `<datastore>/<image>/<version>/` from the first good source: parallel ranged
     * reads into a partial file, resumed from what is on disk after a crash, then the SHA-256 (and an OVA's
     * manifest) checked before an atomic rename to the final name. A source that is missing, stale,
     * unreachable or yields bad bytes is reported and the next one is tried.
     */
    async downloadImage(input: DownloadInput): Promise<DownloadOutput> {
      const paths = deploymentPaths(input.datastore, input.image, input.version, input.format);
      fs.mkdirSync(paths.dir, { recursive: true });
      if (fs.existsSync(paths.final) && fs.statSync(paths.final).size === input.sizeBytes && fs.existsSync(paths.digest)) {
        if (fs.readFileSync(paths.digest, 'utf8').split(/\s/)[0] === input.sha256) {
          return {
            status: 'already-present',
            source: null,
            path: paths.final,
            bytes: input.sizeBytes,
            bytesFetched: 0,
            bytesResumed: 0,
            sourceFailures: [],
          };
        }
      }
      const failures: SourceFailure[] = [];
      for (const source of input.sources) {
        try {
          const fetched = await fetchFrom(source, input, paths);
          return {
            status: 'deployed',
            source: source.location,
            path: paths.final,
            bytes: input.sizeBytes,
            ...fetched,
            sourceFailures: failures,
          };
        } catch (err) {
          if (err instanceof SourceProblem) {
            log.warn('source rejected, trying the next', { location: source.location, status: err.status, reason: err.message });
            failures.push({ location: source.location, status: err.status, reason: err.message });
            continue;
          }
          if (err instanceof VmhubError) throw ApplicationFailure.nonRetryable(err.message, err.type, failures);
          throw err;
        }
      }
      throw ApplicationFailure.retryable(
        `no source could deliver ${input.image}@${input.version}: ${failures.map((f) => `${f.location} ${f.reason}`).join('; ')}`,
        'NoSource',
        failures,
      );
    },
  };

  async function fetchFrom(
    source: SourceCandidate,
    input: DownloadInput,
    paths: ReturnType<typeof deploymentPaths>,
  ): Promise<{ bytesFetched: number; bytesResumed: number }> {
    const signal = cancellationSignal();
    const blob = storage.container(source.location).getBlockBlobClient(input.blob);
    let props;
    try {
      props = await blob.getProperties({ abortSignal: signal });
    } catch (err) {
      if (err instanceof RestError && err.statusCode === 404) throw new SourceProblem('failed', 'blob is missing');
      if (signal.aborted) throw err;
      throw new SourceProblem('failed', `unreachable: ${(err as Error).message.split('\n')[0]}`);
    }
    if (props.contentLength !== input.sizeBytes || props.metadata?.sha256 !== input.sha256) {
      throw new SourceProblem(
        'stale',
        `holds other bytes (size ${props.contentLength}, sha256 ${props.metadata?.sha256 ?? 'unset'})`,
      );
    }
    if (source.etag && props.etag !== source.etag)
      throw new SourceProblem('stale', `changed since it was verified (etag ${props.etag})`);

    const previous = readJson<PartialState>(paths.state);
    const resumable =
      previous &&
      previous.location === source.location &&
      previous.etag === props.etag &&
      previous.chunkSize === CHUNK &&
      fs.existsSync(paths.partial);
    const state: PartialState = resumable
      ? previous
      : { location: source.location, etag: props.etag!, sizeBytes: input.sizeBytes, chunkSize: CHUNK, doneBelow: 0 };
    const bytesResumed = Math.min(state.doneBelow * CHUNK, input.sizeBytes);
    if (resumable) log.info('resuming download from disk', { location: source.location, bytesResumed });

    const handle = await fs.promises.open(paths.partial, resumable ? 'r+' : 'w+');
    let bytesFetched = 0;
    try {
      await handle.truncate(input.sizeBytes);
      const chunks = Math.ceil(input.sizeBytes / CHUNK);
      const done = new Set<number>();
      const pending: number[] = [];
      for (let i = state.doneBelow; i < chunks; i++) pending.push(i);
      // Record progress only once the bytes below it are on disk.
      const checkpoint = async () => {
        const doneBelow = state.doneBelow;
        await handle.datasync();
        fs.writeFileSync(paths.state, JSON.stringify({ ...state, doneBelow }));
      };
      let lastCheckpoint = Date.now();
      const beat = () =>
        heartbeat({
          location: source.location,
          bytesDone: Math.min(state.doneBelow * CHUNK, input.sizeBytes),
          bytesTotal: input.sizeBytes,
        });
      // The bytes are verified in order as they arrive, so nothing is read back at the end; what an
      // earlier attempt left on disk is read once, first. Downloads run at most one pool ahead of it.
      const hash = createHash('sha256');
      const inspector = input.format === 'iso' ? undefined : createInspector(input.format);
      let invalid: unknown;
      const feed = async (buf: Buffer) => {
        hash.update(buf);
        if (inspector && invalid === undefined) await inspector.write(buf).catch((err: unknown) => (invalid = err));
      };
      for (let i = 0; i < state.doneBelow; i++) {
        const buf = Buffer.allocUnsafe(Math.min(CHUNK, input.sizeBytes - i * CHUNK));
        await handle.read(buf, 0, buf.length, i * CHUNK);
        await feed(buf);
      }
      let verifiedBelow = state.doneBelow;
      const arrived = new Map<number, Buffer>();
      let verifying = Promise.resolve();
      const verifyInOrder = () =>
        (verifying = verifying.then(async () => {
          while (arrived.has(verifiedBelow)) {
            const buf = arrived.get(verifiedBelow)!;
            arrived.delete(verifiedBelow++);
            await feed(buf);
          }
        }));

      const keepAlive = setInterval(beat, 5_000);
      let stopped = false;
      try {
        await runPool(pending, config.transferConcurrency, async (i) => {
          while (!stopped && i - verifiedBelow > config.transferConcurrency) await new Promise((r) => setTimeout(r, 10));
          if (stopped) return;
          try {
            const offset = i * CHUNK;
            const count = Math.min(CHUNK, input.sizeBytes - offset);
            let bytes: Buffer;
            try {
              bytes = await blob.downloadToBuffer(offset, count, { abortSignal: signal });
            } catch (err) {
              if (signal.aborted) throw err;
              throw new SourceProblem('failed', `unreachable while reading: ${(err as Error).message.split('\n')[0]}`);
            }
            await handle.write(bytes, 0, bytes.length, offset);
            bytesFetched += bytes.length;
            arrived.set(i, bytes);
            void verifyInOrder();
            done.add(i);
            while (done.has(state.doneBelow)) done.delete(state.doneBelow++);
            beat();
            if (Date.now() - lastCheckpoint > 1_000) {
              lastCheckpoint = Date.now();
              await checkpoint();
            }
          } catch (err) {
            // Lanes waiting for this chunk to be verified must not wait for ever.
            stopped = true;
            throw err;
          }
        });
      } finally {
        clearInterval(keepAlive);
      }
      await checkpoint();
      await verifyInOrder();
      if (verifiedBelow !== chunks) throw new Error(`verified ${verifiedBelow} of ${chunks} chunks`);

      // The SHA-256 decides whether the source gave the right bytes; only then does an OVA's own
      // verdict (manifest, structure) count, and that one is final.
      const sha256 = hash.digest('hex');
      if (sha256 !== input.sha256) {
        fs.rmSync(paths.partial, { force: true });
        fs.rmSync(paths.state, { force: true });
        throw new SourceProblem('failed', `yielded bytes with SHA-256 ${sha256}, expected ${input.sha256}`);
      }
      if (inspector && invalid === undefined) await inspector.finish().catch((err: unknown) => (invalid = err));
      if (invalid !== undefined) {
        throw invalid instanceof VmhubError
          ? invalid
          : new VmhubError('InvalidImage', `image fails verification: ${(invalid as Error).message}`);
      }
      await handle.sync();
    } finally {
      await handle.close();
    }
    fs.renameSync(paths.partial, paths.final);
    fs.writeFileSync(paths.digest, `${input.sha256}  ${path.basename(paths.final)}\n`);
    fs.rmSync(paths.state, { force: true });
    log.info('deployed', {
      image: input.image,
      version: input.version,
      location: source.location,
      bytesFetched,
      bytesResumed,
      attempt: activityInfo().attempt,
    });
    return { bytesFetched, bytesResumed };
  }
}

export type AgentActivities = ReturnType<typeof createAgentActivities>;
