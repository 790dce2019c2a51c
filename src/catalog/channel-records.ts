import type { LibraryPlacement } from '../shared/target-kinds/kind';
import type { WaveSpec } from '../shared/rollout-input';
import type { RunRef } from './image-records';

/** Channels, their library items per SDDC, and rollout policies, as the catalog keeps them. Plain data: no driver. */

/** A named pointer of an image at a version (`stable`, `canary`, …). */
export interface ChannelRecord {
  image: string;
  channel: string;
  version: string;
  /** The versions it pointed at before, most recent first: a rollback takes the first. */
  previous: string[];
  /** The rollout that moved it last, and who started it. */
  rollout?: RunRef;
  by?: string;
  rolledBack?: boolean;
  updatedAt: Date;
}

/** How many earlier versions a channel remembers. */
export const CHANNEL_HISTORY = 5;

/** What an SDDC's channel item holds: set when the SDDC's agent put a version's files in it. */
export interface ChannelItemRecord {
  image: string;
  channel: string;
  sddc: string;
  version: string;
  placement: LibraryPlacement;
  /** Bytes the agent copied into the item (within the vCenter), and bytes it fetched from storage for the version. */
  bytesCopied: number;
  bytesFetched: number;
  run?: RunRef;
  updatedAt: Date;
}

/** The waves a rollout of the image takes when its command gives none. */
export interface RolloutPolicy {
  image: string;
  waves: WaveSpec[];
}
