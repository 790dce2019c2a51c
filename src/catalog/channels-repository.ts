import type { Collection, Db } from 'mongodb';
import { CHANNEL_HISTORY, type ChannelItemRecord, type ChannelRecord, type RolloutPolicy } from './channel-records';
import type { RunRef } from './image-records';
import { withoutUndefined } from './documents';

/**
 * The `channels`, `channel_items` and `rollout_policies` collections: where each channel of an image
 * points, what each SDDC's channel item holds, and the waves an image's rollouts take by default.
 */
export class ChannelsRepository {
  readonly channels: Collection<ChannelRecord>;
  readonly items: Collection<ChannelItemRecord>;
  readonly policies: Collection<RolloutPolicy & { updatedAt: Date }>;

  constructor(db: Db) {
    this.channels = db.collection<ChannelRecord>('channels');
    this.items = db.collection<ChannelItemRecord>('channel_items');
    this.policies = db.collection<RolloutPolicy & { updatedAt: Date }>('rollout_policies');
  }

  async createIndexes(): Promise<void> {
    await this.channels.createIndex({ image: 1, channel: 1 }, { unique: true, name: 'channel_key' });
    await this.items.createIndex({ image: 1, channel: 1, sddc: 1 }, { unique: true, name: 'channel_item_key' });
    await this.policies.createIndex({ image: 1 }, { unique: true, name: 'rollout_policy_image' });
  }

  get(image: string, channel: string): Promise<ChannelRecord | null> {
    return this.channels.findOne({ image, channel }, { projection: { _id: 0 } });
  }

  list(image: string): Promise<ChannelRecord[]> {
    return this.channels.find({ image }, { projection: { _id: 0 }, sort: { channel: 1 } }).toArray();
  }

  /** Every version some channel of the image points at now or pointed at just before: what retention keeps. */
  async heldVersions(image: string): Promise<Set<string>> {
    const held = new Set<string>();
    for (const c of await this.list(image)) {
      held.add(c.version);
      if (c.previous[0]) held.add(c.previous[0]);
    }
    return held;
  }

  /**
   * Points the channel at `version`. A forward move remembers the version it left; a rollback (to the
   * version it pointed at before) forgets the one it leaves, so a second rollback goes back further.
   */
  async point(
    image: string,
    channel: string,
    version: string,
    options: { rollback?: boolean; rollout?: RunRef; by?: string } = {},
  ): Promise<ChannelRecord> {
    const current = await this.get(image, channel);
    let previous = current?.previous ?? [];
    if (current && current.version !== version) {
      previous = options.rollback
        ? previous.filter((v) => v !== version)
        : [current.version, ...previous.filter((v) => v !== current.version && v !== version)];
    }
    const record: ChannelRecord = withoutUndefined({
      image,
      channel,
      version,
      previous: previous.slice(0, CHANNEL_HISTORY),
      rollout: options.rollout,
      by: options.by,
      rolledBack: options.rollback ? true : undefined,
      updatedAt: new Date(),
    });
    await this.channels.replaceOne({ image, channel }, record, { upsert: true });
    return record;
  }

  async recordItem(item: Omit<ChannelItemRecord, 'updatedAt'>): Promise<void> {
    const { image, channel, sddc } = item;
    await this.items.replaceOne({ image, channel, sddc }, withoutUndefined({ ...item, updatedAt: new Date() }), { upsert: true });
  }

  itemsOf(image: string, channel?: string): Promise<ChannelItemRecord[]> {
    const filter = channel === undefined ? { image } : { image, channel };
    return this.items.find(filter, { projection: { _id: 0 }, sort: { channel: 1, sddc: 1 } }).toArray();
  }

  async setPolicy(policy: RolloutPolicy): Promise<void> {
    await this.policies.replaceOne({ image: policy.image }, { ...policy, updatedAt: new Date() }, { upsert: true });
  }

  getPolicy(image: string): Promise<RolloutPolicy | null> {
    return this.policies.findOne({ image }, { projection: { _id: 0, updatedAt: 0 } });
  }
}
