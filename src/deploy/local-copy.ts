import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { blockDigest, blockDigestOf } from '../storage/block-ids';
import type { BlockStore } from '../storage/block-store';
import { blockIndexFromBlockList, localBases, type BlockIndex, type LocalBase } from './block-index';
import { chooseBase, reusableBytes, segmentsOf, type CopiedBlock, type DeltaPlan } from './delta-plan';

const CHECK_PIECE = 1024 * 1024;

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
 * shares with this one, from that version's file. Every copied block's digest is checked as it is read;
 * a block that does not match (or cannot be read) is downloaded instead. The whole file's SHA-256 stays
 * the final word.
 */
export class ChunkSource {
  /** Copied blocks whose bytes did not match their digest, and were downloaded instead. */
  mismatches = 0;
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

  /** Puts the bytes from `start` to `end` into the file: copied where the base holds them, fetched otherwise. */
  async fill(start: number, end: number, fetch: FetchRange, write: WriteAt): Promise<ChunkFill> {
    const fill = { fetched: 0, reused: 0 };
    const segments = this.plan ? segmentsOf(this.plan, start, end) : [{ kind: 'fetch' as const, start, end }];
    for (const s of segments) {
      const length = s.end - s.start;
      const copied = s.kind === 'copy' ? await this.copy(s.start, length, s.block) : undefined;
      if (copied) {
        await write(copied, s.start);
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
      const bytes = Buffer.allocUnsafe(size);
      if ((await this.readBase(bytes, block.baseStart)) && (await blockDigest(bytes)) === block.digest) return bytes;
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
    const bytes = Buffer.allocUnsafe(length);
    return (await this.readBase(bytes, block.baseStart + (start - block.start))) ? bytes : undefined;
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
      return bytesRead === bytes.length;
    } catch {
      // An unreadable base block is downloaded like a changed one.
      return false;
    }
  }
}
