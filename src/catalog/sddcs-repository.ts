import type { Collection, Db } from 'mongodb';
import { VmhubError } from '../shared/errors';
import { withoutUndefined } from './documents';
import { isDuplicateKey } from './duplicate-key';
import type { NewSddc, SddcChanges, SddcRecord } from './sddc-records';

function unknownSddc(name: string, registered: SddcRecord[]): VmhubError {
  const shown = registered.slice(0, 10).map((s) => s.name);
  const names = (registered.length > 10 ? [...shown, `and ${registered.length - 10} more`] : shown).join(', ') || 'none';
  return new VmhubError(
    'UnknownSddc',
    `SDDC ${name} is not registered (registered: ${names}); add it with \`vmhub sddc add ${name} --dc <data center>\``,
  );
}

/**
 * The `sddcs` collection. An operator's new or changed SDDC is checked by the registry's createSddc and
 * updateSddc (src/sddc/registry.ts) before it is written here.
 */
export class SddcsRepository {
  readonly collection: Collection<SddcRecord>;

  constructor(db: Db) {
    this.collection = db.collection<SddcRecord>('sddcs');
  }

  async createIndexes(): Promise<void> {
    await this.collection.createIndex({ name: 1 }, { unique: true, name: 'sddc_name' });
  }

  /** Registers or overwrites an SDDC: for setup scripts and tests; an operator's `sddc add` uses create. */
  async add(sddc: NewSddc): Promise<SddcRecord> {
    const record = { ...sddc, createdAt: new Date() };
    await this.collection.updateOne(
      { name: sddc.name },
      { $set: sddc, $setOnInsert: { createdAt: record.createdAt } },
      { upsert: true },
    );
    return (await this.get(sddc.name))!;
  }

  /** Registers a new SDDC; `SddcExists` when the name is taken (change it with update). */
  async create(sddc: NewSddc): Promise<SddcRecord> {
    try {
      await this.collection.insertOne({ ...withoutUndefined(sddc), createdAt: new Date() });
    } catch (err) {
      if (!isDuplicateKey(err)) throw err;
      throw new VmhubError(
        'SddcExists',
        `SDDC ${sddc.name} is already registered; change it with \`vmhub sddc update ${sddc.name}\` or remove it first`,
      );
    }
    return (await this.get(sddc.name))!;
  }

  /**
   * Registers an SDDC unless one of that name exists, which is left as it is (an operator may have
   * changed it): the default SDDCs are registered this way at every start.
   */
  async ensure(sddc: NewSddc): Promise<{ record: SddcRecord; created: boolean }> {
    const result = await this.collection.updateOne(
      { name: sddc.name },
      { $setOnInsert: { ...withoutUndefined(sddc), createdAt: new Date() } },
      { upsert: true },
    );
    return { record: (await this.get(sddc.name))!, created: result.upsertedCount === 1 };
  }

  /** Changes only the fields given (capacity and policy field by field); `UnknownSddc` when it is not registered. */
  async update(name: string, changes: SddcChanges): Promise<SddcRecord> {
    const set: Record<string, unknown> = { updatedAt: new Date() };
    if (changes.dataCenter !== undefined) set.dataCenter = changes.dataCenter;
    if (changes.taskQueue !== undefined) set.taskQueue = changes.taskQueue;
    if (changes.target !== undefined) set.target = changes.target;
    for (const field of ['capacity', 'ovfPolicy'] as const) {
      for (const [key, value] of Object.entries(changes[field] ?? {})) {
        if (value !== undefined) set[`${field}.${key}`] = value;
      }
    }
    const unset: Record<string, ''> = {};
    for (const [key, value] of Object.entries(changes.labels ?? {})) {
      if (value === null) unset[`labels.${key}`] = '';
      else set[`labels.${key}`] = value;
    }
    const result = await this.collection.updateOne(
      { name },
      Object.keys(unset).length > 0 ? { $set: set, $unset: unset } : { $set: set },
    );
    if (result.matchedCount === 0) throw unknownSddc(name, await this.list());
    return (await this.get(name))!;
  }

  async get(name: string): Promise<SddcRecord | null> {
    return this.collection.findOne({ name }, { projection: { _id: 0 } });
  }

  /** The SDDC's record; `UnknownSddc`, naming the registered ones and `vmhub sddc add`, when there is none. */
  async require(name: string): Promise<SddcRecord> {
    return (await this.get(name)) ?? Promise.reject(unknownSddc(name, await this.list()));
  }

  list(): Promise<SddcRecord[]> {
    return this.collection.find({}, { projection: { _id: 0 }, sort: { name: 1 } }).toArray();
  }

  async remove(name: string): Promise<boolean> {
    return (await this.collection.deleteOne({ name })).deletedCount === 1;
  }
}
