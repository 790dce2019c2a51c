import type { RunRef } from '../catalog/image-records';
import type { Config } from '../config';
import type { InspectOptions } from '../images/inspect';
import { loadTrustedCas } from '../images/ovf-certificate';
import type { ImageSource } from '../source/source';
import { blockBounds, type BlockPlan } from '../shared/block-plan';
import { BlockBuffers } from '../storage/block-buffers';
import { ByteBudget } from '../storage/byte-budget';
import { hashPool, type HashPool } from '../storage/hashing';
import { HeldBytes, type PublishTap } from './block-tap';
import { TapRegistry } from './tap-registry';

/** Which publish a tap serves: its run, source and plan. */
export interface TapKey {
  run: RunRef;
  source: string;
  pin?: string;
}

/**
 * What the staging and inspection of every publish on one worker share: the byte budget every read waits
 * for, the block buffers reads fill, the taps where a publish's staging and inspection meet, and the
 * hashing threads.
 */
export class PublishWorkspace {
  readonly budget: ByteBudget;
  /** Uploads in flight for one publish on this worker, whichever of its ranges they belong to. */
  readonly slots: number;
  readonly hashes: HashPool = hashPool();
  private readonly taps: TapRegistry;
  private readonly buffers: BlockBuffers;
  private readonly giveBack = (bytes: Buffer) => this.buffers.give(bytes);

  constructor(private readonly config: Pick<Config, 'maxInflightBytes' | 'rangeFanOut' | 'transferConcurrency' | 'ovf'>) {
    this.budget = new ByteBudget(config.maxInflightBytes);
    // A quarter of the budget at most waits in taps for inspectors, and staging runs no further ahead of an
    // inspector than that holds: one that lags (a starved machine) slows the staging instead of reading the
    // source again, and the worker's peak memory stays near its uploads' own.
    this.taps = new TapRegistry(config.maxInflightBytes / 4);
    this.slots = config.rangeFanOut * config.transferConcurrency;
    // Blocks are read into these and given back once uploaded and inspected; a block whose read or upload
    // failed is never given back, as a request may still be reading or writing it.
    this.buffers = new BlockBuffers(() => this.budget.capacity - this.budget.heldBytes);
  }

  /** Stage and inspect activities of one publish meet in this process's tap under its key. */
  tap({ run, source, pin }: TapKey, plan: BlockPlan): PublishTap {
    const key = JSON.stringify([run.workflowId, run.runId, source, pin ?? null, plan.sizeBytes, plan.blockSize]);
    return this.taps.tap(key, plan, this.slots);
  }

  /** Block i of the source, read into a pooled buffer once the budget has room for it. */
  async readBlock(source: ImageSource, plan: BlockPlan, i: number, signal: AbortSignal): Promise<HeldBytes> {
    const { start, end } = blockBounds(plan, i);
    const reservation = await this.budget.acquire(end - start, signal);
    try {
      const bytes = await source.read(start, end, signal, this.buffers.take(end - start));
      return new HeldBytes(bytes, reservation, this.giveBack);
    } catch (err) {
      reservation.release();
      throw err;
    }
  }

  /** What the inspector is told: the trusted CAs, read anew for each publish so a changed file needs no restart. */
  async inspectOptions(): Promise<InspectOptions> {
    return { trustedCas: await loadTrustedCas(this.config.ovf.trustedCaFile) };
  }
}
