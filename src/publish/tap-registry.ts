import type { BlockPlan } from '../shared/block-plan';
import { PublishTap, type TapRoom } from './block-tap';

/** How many publishes' keys a registry remembers as settled. */
const SETTLED_KEYS = 256;

/**
 * The taps of the publishes running in this process, one per run, source and plan. A tap goes when it
 * is idle (between two ranges, say); the registry remembers which publishes were settled (an inspector
 * came, or did not within the grace), so that a later tap of theirs does not wait for an inspector again.
 */
export class TapRegistry {
  private readonly taps = new Map<string, PublishTap>();
  private readonly settled = new Set<string>();

  private readonly room: TapRoom;

  constructor(limitBytes: number) {
    this.room = { limitBytes, heldBytes: 0 };
  }

  /**
   * The tap of one publish; staging leads its inspector by no more blocks than the taps hold, so the
   * blocks it is given are there when the inspector comes for them (unless other publishes here fill them).
   */
  tap(key: string, plan: Pick<BlockPlan, 'blockCount' | 'blockSize'>, slots: number): PublishTap {
    let tap = this.taps.get(key);
    if (!tap) {
      // A tap that cannot hold a single block keeps none: its inspector reads them all, and nothing waits for it.
      const fits = Math.floor(this.room.limitBytes / plan.blockSize);
      const created: PublishTap = new PublishTap(plan.blockCount, slots, this.room, {
        lead: fits > 0 ? Math.min(slots, fits) : Infinity,
        awaitInspector: !this.settled.has(key),
        onIdle: () => {
          if (this.taps.get(key) === created) this.taps.delete(key);
        },
        onSettled: () => {
          this.settled.add(key);
          if (this.settled.size > SETTLED_KEYS) this.settled.delete(this.settled.values().next().value!);
        },
      });
      this.taps.set(key, created);
      tap = created;
    }
    return tap;
  }

  get size(): number {
    return this.taps.size;
  }
}
