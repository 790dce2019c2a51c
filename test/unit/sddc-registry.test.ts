import type { NewSddc, SddcRecord } from '../../src/catalog/sddc-records';
import type { SddcsRepository } from '../../src/catalog/sddcs-repository';
import {
  checkCapacity,
  checkDataCenter,
  checkNewSddc,
  checkSddcChanges,
  registerDefaultSddcs,
  sddcFromSeed,
} from '../../src/sddc/registry';
import { agentTaskQueueOf } from '../../src/shared/task-queues';
import { parseTopology, type Topology } from '../../src/topology/topology';
import { typedError } from './typed-error';

const message = (fn: () => unknown): string => typedError('InvalidInput', fn).message;

const topology: Topology = parseTopology(
  JSON.stringify({
    dataCenters: [{ id: 'dc-east' }, { id: 'dc-west' }],
    storage: [{ id: 'p', dataCenter: 'dc-east', role: 'primary', endpoint: 'http://127.0.0.1:1/a', container: 'vm-images' }],
    sddcs: [
      { name: 'east-1', dataCenter: 'dc-east', capacity: { cpus: 64, memoryMiB: 524288, diskGiB: 4096 } },
      { name: 'west-1', dataCenter: 'dc-west', capacity: { cpus: 32, memoryMiB: 262144, diskGiB: 2048 } },
    ],
  }),
);

const sddc = (over: Partial<NewSddc> = {}): NewSddc => ({
  name: 'east-3',
  dataCenter: 'dc-east',
  taskQueue: 'sddc-east-3',
  capacity: { cpus: 16, memoryMiB: 65536, diskGiB: 1024 },
  ...over,
});

describe('SDDC registry rules', () => {
  it('a data center must be in the topology; the message lists those that are', () => {
    expect(checkDataCenter(topology, 'dc-west')).toBe('dc-west');
    expect(message(() => checkDataCenter(topology, 'dc-north'))).toBe(
      '--dc "dc-north" is not a data center of the topology; use one of dc-east, dc-west, e.g. --dc dc-east',
    );
  });

  it.each([
    [{ cpus: -4 }, '--cpus must be a whole number above zero, e.g. --cpus 16'],
    [{ cpus: 2.5 }, '--cpus must be a whole number above zero, e.g. --cpus 16'],
    [{ memoryMiB: 0 }, '--memory must be a whole number above zero, e.g. --memory 256GiB'],
    [{ diskGiB: Number.NaN }, '--disk must be a whole number above zero, e.g. --disk 4TiB'],
  ])('refuses capacity %j', (capacity, text) => {
    expect(message(() => checkCapacity(capacity))).toBe(text);
  });

  it('accepts a whole capacity or part of one', () => {
    expect(checkCapacity({ cpus: 8 })).toEqual({ cpus: 8 });
    expect(checkNewSddc(topology, sddc())).toEqual(sddc());
  });

  it('a new SDDC is checked field by field', () => {
    expect(message(() => checkNewSddc(topology, sddc({ name: 'East-3' })))).toContain('(try east-3)');
    expect(message(() => checkNewSddc(topology, sddc({ dataCenter: 'nowhere' })))).toContain('use one of dc-east, dc-west');
    expect(message(() => checkNewSddc(topology, sddc({ taskQueue: ' ' })))).toContain('--task-queue');
  });

  it('an update needs at least one change, and checks those given', () => {
    expect(message(() => checkSddcChanges(topology, {}))).toMatch(/^nothing to change/);
    expect(message(() => checkSddcChanges(topology, { capacity: {} }))).toMatch(/^nothing to change/);
    expect(checkSddcChanges(topology, { capacity: { cpus: 16 } })).toEqual({ capacity: { cpus: 16 } });
    expect(message(() => checkSddcChanges(topology, { capacity: { cpus: 0 } }))).toContain('--cpus');
    expect(message(() => checkSddcChanges(topology, { dataCenter: 'dc-x' }))).toContain('--dc "dc-x"');
  });

  it('a default SDDC is registered on sddc-<name> with the topology capacity and target', () => {
    expect(agentTaskQueueOf('east-1')).toBe('sddc-east-1');
    expect(sddcFromSeed(topology.sddcs[0])).toEqual({
      name: 'east-1',
      dataCenter: 'dc-east',
      taskQueue: 'sddc-east-1',
      capacity: { cpus: 64, memoryMiB: 524288, diskGiB: 4096 },
      target: { kind: 'directory' },
    });
  });

  it('registers each default SDDC through ensure, and reports which were new', async () => {
    const existing = new Map<string, SddcRecord>([
      [
        'east-1',
        { ...sddcFromSeed(topology.sddcs[0]), capacity: { cpus: 8, memoryMiB: 1024, diskGiB: 10 }, createdAt: new Date(0) },
      ],
    ]);
    const sddcs: Pick<SddcsRepository, 'ensure'> = {
      async ensure(s) {
        const found = existing.get(s.name);
        if (found) return { record: found, created: false };
        const record = { ...s, createdAt: new Date() };
        existing.set(s.name, record);
        return { record, created: true };
      },
    };
    const result = await registerDefaultSddcs(sddcs, topology);
    expect(result.map((r) => [r.name, r.created])).toEqual([
      ['east-1', false],
      ['west-1', true],
    ]);
    expect(result[0].record.capacity.cpus).toBe(8);
  });
});
