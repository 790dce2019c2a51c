import fs from 'node:fs';
import type { BlockBlobClient } from '@azure/storage-blob';
import { blockDigest } from '../storage/block-ids';
import { blockIndexFromBlockList, localBases, type BlockIndex, type LocalBase } from './block-index';
import { chooseBase, reusableBytes, segmentsOf, type CopiedBlock, type DeltaPlan } from './delta-plan';

/** Fills `into` with the image's bytes from `offset` on, from the source. */
export type FetchRange = (into: Buffer, offset: number) => Promise<unknown>;

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
    blob: BlockBlobClient,
    image: { image: string; version: string; sha256: string; sizeBytes: number },
    root: string,
    options: { reuse: boolean; abortSignal: AbortSignal },
  ): Promise<ChunkSource> {
    let index: BlockIndex | undefined;
    try {
      const list = await blob.getBlockList('committed', { abortSignal: options.abortSignal });
      index = blockIndexFromBlockList(
        (list.committedBlocks ?? []).map((b) => ({ name: b.name, size: b.size })),
        image,
      );
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

  /** Fills `into` with the bytes from `offset` on: copied where the base holds them, fetched otherwise. */
  async read(into: Buffer, offset: number, fetch: FetchRange): Promise<ChunkFill> {
    const fill = { fetched: 0, reused: 0 };
    const segments = this.plan
      ? segmentsOf(this.plan, offset, offset + into.length)
      : [{ kind: 'fetch' as const, start: offset, end: offset + into.length }];
    for (const s of segments) {
      const part = into.subarray(s.start - offset, s.end - offset);
      if (s.kind === 'copy' && (await this.copy(part, s.start, s.block))) {
        fill.reused += part.length;
      } else {
        await fetch(part, s.start);
        fill.fetched += part.length;
      }
    }
    return fill;
  }

  async close(): Promise<void> {
    await this.handle?.close();
  }

  /** Copies part of one block from the base into `part`, if the whole block's bytes there match its digest. */
  private async copy(part: Buffer, start: number, block: CopiedBlock): Promise<boolean> {
    const whole = start === block.start && part.length === block.end - block.start;
    const bytes = whole ? part : Buffer.allocUnsafe(block.end - block.start);
    try {
      const { bytesRead } = await this.handle!.read(bytes, 0, bytes.length, block.baseStart);
      if (bytesRead === bytes.length && (await blockDigest(bytes)) === block.digest) {
        if (!whole) bytes.copy(part, 0, start - block.start, start - block.start + part.length);
        return true;
      }
    } catch {
      // An unreadable base block is downloaded like a changed one.
    }
    this.mismatches++;
    return false;
  }
}
