import fs from 'node:fs';
import type { WrittenFollower } from '../deploy/download';
import { signedItemMembers } from '../deploy/expected-members';
import { TarReader, type TarSink } from '../images/tar-reader';
import type { Provenance, SignedMember } from '../provenance/statement';
import { formatOf } from '../shared/image-format';
import type { ImageVersion } from '../shared/image-version';
import { planUploads, type ContentLibrary } from './content-library';
import type { StartedUpload } from './vsphere-rest';
import {
  completeImport,
  discardImport,
  openItem,
  sessionFor,
  type ImportResult,
  type OpenedItem,
  type Progress,
  type VcenterConnection,
} from './library-import';

/**
 * A content-library deploy that sends the image into the item's update session while it downloads: each
 * attempt at a source opens (or resumes) a session with the signed members' names, sizes and SHA-256, and
 * a follower reads the partial file behind the download, in order, splitting an OVA into its members on
 * the way. The download verifies the file from the very bytes the follower read and sent, so the session
 * is completed only after the bytes it took verified against the signed provenance; otherwise it is failed
 * and the half item removed, so no unverified item becomes visible.
 */
const READ_CHUNK = 4 * 1024 * 1024;
/** Chunks handed to the verifier that it may not have taken in yet. */
const VERIFY_AHEAD = 3;
/** Bytes a member's upload may hold unsent before the follower waits for it. */
const UPLOAD_BUFFER = 8 * 1024 * 1024;
/**
 * A streamed upload's socket is idle while the download waits on its source, for longer than the REST
 * client's usual allowance; a cancel or a failed upload ends the attempt sooner.
 */
const STREAM_IDLE_MS = 30 * 60_000;

/** One attempt's session: the members' endpoints, fed from the partial file as the download writes it. */
class SessionUpload implements WrittenFollower {
  private available = 0;
  private wake?: () => void;
  private readonly stop = new AbortController();
  /** The activity's cancel, or the attempt given up or failed: ends the uploads and the wait for bytes. */
  private readonly signal: AbortSignal;
  private readonly used = new Set<string>();
  bytesRead = 0;
  readonly done: Promise<void>;

  constructor(
    private readonly cl: ContentLibrary,
    readonly sessionId: string,
    readonly members: SignedMember[],
    private readonly endpoints: Map<string, string>,
    private readonly partial: string,
    private readonly ref: ImageVersion,
    /** Given every byte read, in order, before it is sent: the download's verifier, which sets the pace and never rejects. */
    private readonly verify: (bytes: Buffer) => Promise<void>,
    private readonly onBytes: (bytesRead: number) => void,
    activitySignal: AbortSignal,
  ) {
    this.signal = AbortSignal.any([activitySignal, this.stop.signal]);
    this.signal.addEventListener('abort', () => this.wake?.(), { once: true });
    this.done = this.run();
    // Observed by finish or given up by abandon.
    this.done.catch(() => undefined);
  }

  advanceTo(bytes: number): void {
    this.available = bytes;
    this.wake?.();
  }

  abort(reason: Error = new Error('the streamed import was given up')): void {
    this.stop.abort(reason);
  }

  private async landed(at: number): Promise<void> {
    while (this.available <= at) {
      this.signal.throwIfAborted();
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
    this.signal.throwIfAborted();
  }

  private async run(): Promise<void> {
    const handle = await fs.promises.open(this.partial, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
    try {
      const whole = !formatOf(this.ref.format).libraryItem.members;
      let current: StartedUpload | undefined;
      const reader = new TarReader(async (entry) => {
        current = this.start(entry.name, entry.size);
        return current ? this.sink(current) : DROP;
      });
      if (whole) current = this.start(this.members[0].name, this.ref.sizeBytes);
      // An image that is the item's one file goes as it is; an OVA through the reader, member by member.
      const wholeSink = current ? this.sink(current) : DROP;
      const verifying: Array<Promise<void>> = [];
      while (this.bytesRead < this.ref.sizeBytes) {
        await this.landed(this.bytesRead);
        // On shared memory, where the hashing thread reads it in place; never written again once read.
        const chunk = Buffer.from(new SharedArrayBuffer(Math.min(READ_CHUNK, this.available - this.bytesRead)));
        const { bytesRead } = await handle.read(chunk, 0, chunk.length, this.bytesRead);
        if (bytesRead !== chunk.length) throw new Error(`short read of the partial file at byte ${this.bytesRead}`);
        verifying.push(this.verify(chunk));
        // The chunks the hashing thread has yet to take in stay in memory: a few, however fast the rest goes.
        if (verifying.length > VERIFY_AHEAD) await verifying.shift();
        if (whole) wholeSink.update(chunk);
        else await reader.write(chunk);
        this.bytesRead += chunk.length;
        this.onBytes(this.bytesRead);
        if (current) await Promise.race([current.upload.drained(UPLOAD_BUFFER), current.sent]);
      }
      if (whole) await wholeSink.end();
      else reader.finish();
      const missing = [...this.endpoints.keys()].filter((name) => !this.used.has(name));
      if (missing.length > 0) throw new Error(`the archive holds no member ${missing.join(', ')}`);
    } finally {
      await handle.close();
    }
  }

  /** The upload of a member the session waits for, or none for one it holds already or the item never holds. */
  private start(name: string, size: number): StartedUpload | undefined {
    const endpoint = this.endpoints.get(name);
    if (!endpoint || this.used.has(name)) return undefined;
    this.used.add(name);
    const started = this.cl.rest.startUpload(endpoint, size, name, { signal: this.signal, idleTimeoutMs: STREAM_IDLE_MS });
    // A failed upload ends the attempt now, even while it waits for the download, which is then stopped.
    started.sent.catch((err: unknown) => this.abort(err as Error));
    return started;
  }

  private sink({ upload, sent }: StartedUpload): TarSink {
    return {
      update: (bytes) => upload.write(bytes),
      // One member at a time: the next is sent once the vCenter has taken this one, and checked its SHA-256.
      end: async () => {
        upload.end();
        await sent;
      },
    };
  }
}

const DROP: TarSink = { update: () => undefined, end: () => undefined };

/** The streamed import of one version into one item, over the attempts of its download. */
export class StreamedImport {
  private attempt?: SessionUpload;

  private constructor(
    private readonly conn: VcenterConnection,
    private readonly ref: ImageVersion,
    private readonly opened: OpenedItem,
    private readonly signal: AbortSignal,
    private readonly onProgress: (p: Progress) => void,
  ) {}

  /** The import into the version's item, made if need be; undefined when the item is a finished one (checked by the caller's own path). */
  static async open(
    conn: VcenterConnection,
    ref: ImageVersion,
    signal: AbortSignal,
    onProgress: (p: Progress) => void,
  ): Promise<StreamedImport | undefined> {
    const opened = await openItem(conn, ref, signal);
    return opened.state === 'present' ? undefined : new StreamedImport(conn, ref, opened, signal, onProgress);
  }

  /** Whether any bytes went to a session: without one (the copy was on disk already), the caller imports the copy. */
  get started(): boolean {
    return this.attempt !== undefined;
  }

  /**
   * A new attempt at a source: an earlier attempt's session took bytes that did not verify, so it is failed
   * first; then the session of this one gets every member the item does not hold yet, each with its signed
   * SHA-256 for the vCenter to check too.
   */
  follow = async (
    partial: string,
    provenance: Provenance,
    verify: (bytes: Buffer) => Promise<void>,
  ): Promise<WrittenFollower> => {
    if (this.attempt) await this.failAttempt('its bytes did not verify; the download started again');
    const cl = this.conn.library;
    const call = { signal: this.signal };
    const { item } = this.opened;
    const members = signedItemMembers(this.ref, provenance);
    const sessionId = await sessionFor(cl, item.id, this.signal);
    const plan = planUploads(members, await cl.sessionFiles(sessionId, call), await cl.itemFiles(item.id, call));
    const endpoints = new Map(plan.resend.map((r) => [r.file.name, r.endpoint]));
    for (const file of plan.add) endpoints.set(file.name, await cl.uploadEndpoint(sessionId, plan, file, call));
    const onBytes = (bytesDone: number) =>
      this.onProgress({ file: 'streaming into the library', bytesDone, bytesTotal: this.ref.sizeBytes });
    this.attempt = new SessionUpload(cl, sessionId, members, endpoints, partial, this.ref, verify, onBytes, this.signal);
    return this.attempt;
  };

  /**
   * After the download: the last members sent, then the session completed and the item checked and recorded.
   * `fetched`: the download ended with a fetch that verified, whose follower (this last attempt) read and sent
   * the very bytes verified. Otherwise (the copy was found on disk after an attempt at another source) the
   * session is failed and undefined returned: the caller imports the verified copy from disk instead.
   */
  async finish(fetched: boolean): Promise<ImportResult | undefined> {
    const attempt = this.attempt!;
    if (!fetched) {
      await this.failAttempt('the download ended without verifying the bytes sent');
      return undefined;
    }
    await attempt.done;
    const { item, placement } = this.opened;
    await completeImport(this.conn, this.ref, { id: item.id, name: item.name }, attempt.sessionId, attempt.members, this.signal);
    const bytesSent = attempt.bytesRead;
    return { status: 'deployed', placement, bytesSent, bytesSkipped: 0 };
  }

  /**
   * Gives the import up: the session is failed with `reason` (cancelled, for a cancel), so nothing of it
   * applies to the item, and the item, while still marked importing, removed. Runs without the activity's
   * signal: it runs after a cancel too.
   */
  async abandon(reason: string, cancelled: boolean): Promise<void> {
    if (this.attempt) await this.failAttempt(reason, cancelled);
    await discardImport(this.conn, this.ref);
  }

  private async failAttempt(reason: string, cancelled = false): Promise<void> {
    const attempt = this.attempt!;
    attempt.abort();
    await attempt.done.catch(() => undefined);
    const cl = this.conn.library;
    // A session the vCenter ended already is no open session: the item is removed after it all the same.
    await (cancelled ? cl.cancel(attempt.sessionId) : cl.fail(attempt.sessionId, reason)).catch(() => undefined);
  }
}
