import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { checkFreeSpace } from '../datastore/layout';
import { blockDigest, blockDigestOf } from '../storage/block-ids';
import { BlockBuffers } from '../storage/block-buffers';
import type { BlockStore } from '../storage/block-store';
import { blockIndexFromBlockList, localBases, type BlockIndex, type LocalBase } from './block-index';
import { chooseBase, inPlaceBlocks, reusableBytes, segmentsOf, type CopiedBlock, type DeltaPlan } from './delta-plan';
import type { StepLog } from './download-request';
import { CHUNK, type PartialState } from './partial-state';

const CHECK_PIECE = 1024 * 1024;
/**
 * Idle copy buffers kept for the next copies: eight lanes' chunks. A fresh buffer for every chunk had the
 * heap collected every few chunks, on the thread that drives the lanes.
 */
const SPARE_BYTES = 8 * CHUNK;

/** Puts the image's `length` bytes at `start` into the file, from the source. */
export type FetchRange = (start: number, length: number) => Promise<void>;
/** Writes bytes copied from the base into the file at `at`. */
export type WriteAt = (bytes: Buffer, at: number) => Promise<void>;

export interface ChunkFill {
  fetched: number;
  reused: number;
}

/**
 * Where a download gets each chunk's bytes: from the source, or for blocks an earlier version on disk
 * shares with this one, from that version's file.
 *
 * When most of the base stays where it is, the partial file begins as a copy of the whole base made by
 * the file system (`startFrom`), and the blocks kept in place are neither read nor written by this
 * process again. A block that moved is read from the base and its digest checked as it is read; one that
 * does not match (or cannot be read) is downloaded instead. Blocks kept in place are not checked one by
 * one: their digests come from the block list in the store, which a download does not check against the
 * signed one, so they would prove nothing the whole file's SHA-256 does not. That SHA-256, over every byte
 * of the finished file and checked against the signed statement, stays the final word (see ./download).
 */
export class ChunkSource {
  /** Copied blocks whose bytes did not match their digest, and were downloaded instead. */
  mismatches = 0;
  /** Bytes this process read from the base: the blocks that moved. A copy of the base stays in the kernel. */
  readFromBase = 0;
  /** Whether the partial file began as a copy of the base, whose blocks kept in place are left as they are. */
  private cloned = false;
  /** What copies are read into, on shared memory that a hashing thread checks in place; used again once written. */
  private readonly buffers = new BlockBuffers(() => SPARE_BYTES);
  /** Whether each base block larger than a chunk matched its digest, by its start in the new file. */
  private readonly verdicts = new Map<number, Promise<boolean>>();

  private constructor(
    /** The new version's index, to keep beside it; undefined when its block list is not one vmhub committed. */
    readonly index: BlockIndex | undefined,
    readonly base: LocalBase | undefined,
    private readonly plan: DeltaPlan | undefined,
    private readonly handle: fs.promises.FileHandle | undefined,
  ) {}

  /** Downloads every byte: no index, no base. */
  static plain(): ChunkSource {
    return new ChunkSource(undefined, undefined, undefined, undefined);
  }

  /**
   * Reads the blob's committed block list and picks, among the other versions of the image in the
   * datastore, the one sharing the most bytes with it. Without a usable list or base, every byte is
   * downloaded; only an abort is thrown.
   */
  static async open(
    store: BlockStore,
    blob: string,
    image: { image: string; version: string; sha256: string; sizeBytes: number },
    root: string,
    options: { reuse: boolean; abortSignal: AbortSignal },
  ): Promise<ChunkSource> {
    let index: BlockIndex | undefined;
    try {
      index = blockIndexFromBlockList(await store.committedBlocks(blob, { abortSignal: options.abortSignal }), image);
    } catch (err) {
      if (options.abortSignal.aborted) throw err;
    }
    const chosen = index && options.reuse ? chooseBase(index, await localBases(root, image.image, image.version)) : undefined;
    if (!index || !chosen) return new ChunkSource(index, undefined, undefined, undefined);
    const handle = await fs.promises
      .open(chosen.base.file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW)
      .catch(() => undefined);
    return handle
      ? new ChunkSource(index, chosen.base, chosen.plan, handle)
      : new ChunkSource(index, undefined, undefined, undefined);
  }

  /** Bytes the plan means to copy from the base. */
  get reusable(): number {
    return this.plan ? reusableBytes(this.plan) : 0;
  }

  /** Whether the partial file began as a copy of the base. */
  get isCloned(): boolean {
    return this.cloned;
  }

  /** The blocks a copy of the base holds in place, which `fill` leaves as they are; none unless cloned. */
  keptBlocks(): CopiedBlock[] {
    return this.cloned && this.plan ? inPlaceBlocks(this.plan) : [];
  }

  /**
   * Makes `partial` ready to be filled. A download from its start, with a base most of whose bytes stay in
   * place, begins as a copy of the whole base file made by the file system: a reflink where the file
   * system shares extents, else copy_file_range in the kernel; no byte passes through this process.
   * `state.cloned` says so once a checkpoint (which follows a sync) holds it, so that a resumed download
   * leaves the kept blocks past its checkpoint as they are only when they are that same base's. Any other
   * resumed download fills every chunk past its checkpoint block by block, and so does one whose copy
   * could not be made (no room for the base, no /proc, no permission): that is logged, never a failure.
   */
  async startFrom(partial: string, state: PartialState, log: Pick<StepLog, 'warn'>): Promise<void> {
    const base = this.base && { version: this.base.version, sha256: this.base.index.sha256 };
    if (base && state.cloned?.version === base.version && state.cloned.sha256 === base.sha256) {
      this.cloned = true;
      return;
    }
    delete state.cloned;
    const kept = this.plan ? inPlaceBlocks(this.plan).reduce((sum, b) => sum + b.end - b.start, 0) : 0;
    // A copy of the whole base pays for itself only when most of it stays.
    if (!base || state.doneBelow > 0 || kept * 2 < this.plan!.sizeBytes) return;
    await fs.promises.rm(partial, { force: true });
    try {
      // The download's own free-space check sized the new version: a copy that is no reflink takes the base's size.
      const { size } = await this.handle!.stat();
      checkFreeSpace(await fs.promises.statfs(path.dirname(partial)), size, path.dirname(partial));
      // Through the descriptor opened without following links, where the system offers one: the file chosen.
      const from = process.platform === 'linux' ? `/proc/self/fd/${this.handle!.fd}` : this.base!.file;
      await fs.promises.copyFile(from, partial, fs.constants.COPYFILE_FICLONE | fs.constants.COPYFILE_EXCL);
    } catch (err) {
      // No /proc, no room, no permission: the same would fail every retry, and block by block needs none of it.
      await fs.promises.rm(partial, { force: true });
      log.warn('could not begin the file as a copy of the earlier version; copying its blocks one by one', {
        base: base.version,
        reason: (err as Error).message,
      });
      return;
    }
    state.cloned = base;
    this.cloned = true;
  }

  /** Puts the bytes from `start` to `end` into the file: copied where the base holds them, fetched otherwise. */
  async fill(start: number, end: number, fetch: FetchRange, write: WriteAt): Promise<ChunkFill> {
    const fill = { fetched: 0, reused: 0 };
    const segments = this.plan ? segmentsOf(this.plan, start, end) : [{ kind: 'fetch' as const, start, end }];
    for (const s of segments) {
      const length = s.end - s.start;
      if (s.kind === 'copy' && this.cloned && s.block.baseStart === s.block.start) {
        // Already there: the file began as a copy of the base.
        fill.reused += length;
        continue;
      }
      const copied = s.kind === 'copy' ? await this.copy(s.start, length, s.block) : undefined;
      if (copied) {
        await write(copied, s.start);
        this.buffers.give(copied);
        fill.reused += length;
      } else {
        await fetch(s.start, length);
        fill.fetched += length;
      }
    }
    return fill;
  }

  async close(): Promise<void> {
    await this.handle?.close();
  }

  /** Part of one block read from the base, if the whole block's bytes there match its digest. */
  private async copy(start: number, length: number, block: CopiedBlock): Promise<Buffer | undefined> {
    const size = block.end - block.start;
    if (length === size) {
      // The common case, a chunk holding whole blocks: one read, checked and used as it is.
      const bytes = this.buffers.take(size);
      if ((await this.readBase(bytes, block.baseStart)) && (await blockDigest(bytes)) === block.digest) return bytes;
      this.buffers.give(bytes);
      this.mismatches++;
      return undefined;
    }
    // A block larger than a chunk is checked once, piece by piece, whichever of its chunks comes first.
    let verdict = this.verdicts.get(block.start);
    if (!verdict) {
      verdict = this.checkBlock(block);
      this.verdicts.set(block.start, verdict);
    }
    if (!(await verdict)) return undefined;
    const bytes = this.buffers.take(length);
    if (await this.readBase(bytes, block.baseStart + (start - block.start))) return bytes;
    this.buffers.give(bytes);
    return undefined;
  }

  private async checkBlock(block: CopiedBlock): Promise<boolean> {
    const hash = createHash('sha256');
    const piece = Buffer.allocUnsafe(Math.min(CHECK_PIECE, block.end - block.start));
    for (let at = 0; at < block.end - block.start; at += piece.length) {
      const bytes = piece.subarray(0, Math.min(piece.length, block.end - block.start - at));
      if (!(await this.readBase(bytes, block.baseStart + at))) break;
      hash.update(bytes);
      if (at + bytes.length === block.end - block.start) {
        if (blockDigestOf(hash.digest('hex')) === block.digest) return true;
        break;
      }
    }
    this.mismatches++;
    return false;
  }

  /** Fills `bytes` from the base at `position`; false when it cannot (a short or failed read). */
  private async readBase(bytes: Buffer, position: number): Promise<boolean> {
    try {
      const { bytesRead } = await this.handle!.read(bytes, 0, bytes.length, position);
      this.readFromBase += bytesRead;
      return bytesRead === bytes.length;
    } catch {
      // An unreadable base block is downloaded like a changed one.
      return false;
    }
  }
}
