import fs from 'node:fs';
import path from 'node:path';
import type { ReplicaRecord } from '../../src/catalog/image-records';
import { capacityShortfall, sourceOrder } from '../../src/deploy/placement';
import { dataCentersByDistance, parseTopology, type StorageLocation } from '../../src/topology/topology';

const GiB = 2 ** 30;

describe('capacityShortfall', () => {
  const capacity = { cpus: 8, memoryMiB: 16384, diskGiB: 100 };
  it.each([
    ['fits exactly', { cpus: 8, memoryMiB: 16384, diskBytes: 100 * GiB }, undefined],
    ['no requirements (an ISO)', undefined, undefined],
    ['too many CPUs', { cpus: 9, memoryMiB: 1, diskBytes: 0 }, '9 CPUs needed, 8 available'],
    ['too much memory', { cpus: 1, memoryMiB: 16385, diskBytes: 0 }, '16385 MiB memory needed, 16384 MiB available'],
    ['too much disk', { cpus: 1, memoryMiB: 1, diskBytes: 100 * GiB + 1 }, '101 GiB disk needed, 100 GiB available'],
    [
      'everything',
      { cpus: 16, memoryMiB: 32768, diskBytes: 200 * GiB },
      '16 CPUs needed, 8 available; 32768 MiB memory needed, 16384 MiB available; 200 GiB disk needed, 100 GiB available',
    ],
  ])('%s', (_name, needs, expected) => {
    expect(capacityShortfall(needs, capacity)).toBe(expected);
  });
});

describe('sourceOrder', () => {
  const topology = parseTopology(fs.readFileSync(path.resolve(__dirname, '../../config/topology.json'), 'utf8'), {});
  const three: StorageLocation[] = [
    ...topology.storage,
    { id: 'west-replica-2', dataCenter: 'dc-west', role: 'replica', endpoint: 'http://x/a', container: 'vm-images' },
  ];
  const verified = (location: string, etag = `"${location}"`): ReplicaRecord => ({ location, status: 'verified', etag });
  const order = (from: string, replicas: ReplicaRecord[], locations = topology.storage) =>
    sourceOrder(locations, replicas, dataCentersByDistance(topology, from)).map((c) => c.location);

  it.each([
    [
      'west reads its own verified replica, then the primary',
      'dc-west',
      [verified('west-replica')],
      ['west-replica', 'east-primary'],
    ],
    [
      'east reads the primary in its own data center first',
      'dc-east',
      [verified('west-replica')],
      ['east-primary', 'west-replica'],
    ],
    [
      'a replica not verified is no source',
      'dc-west',
      [{ location: 'west-replica', status: 'stale' } as ReplicaRecord],
      ['east-primary'],
    ],
    [
      'a pending replica is no source',
      'dc-west',
      [{ location: 'west-replica', status: 'pending' } as ReplicaRecord],
      ['east-primary'],
    ],
    ['no replicas at all', 'dc-west', [], ['east-primary']],
  ])('%s', (_name, from, replicas, expected) => {
    expect(order(from, replicas)).toEqual(expected);
  });

  it('orders several replicas in one data center by id, and carries their etags', () => {
    const candidates = sourceOrder(
      three,
      [verified('west-replica-2'), verified('west-replica')],
      dataCentersByDistance(topology, 'dc-west'),
    );
    expect(candidates.map((c) => [c.location, c.etag])).toEqual([
      ['west-replica', '"west-replica"'],
      ['west-replica-2', '"west-replica-2"'],
      ['east-primary', undefined],
    ]);
  });
});
