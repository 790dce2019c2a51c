import { BATCH_SIZE, batchesOf } from '../../src/shared/batches';

describe('batchesOf', () => {
  const fleet = (n: number, dataCenters: string[]) =>
    Array.from({ length: n }, (_, i) => ({ name: `sddc-${i}`, dataCenter: dataCenters[i % dataCenters.length] }));

  it('keeps each data center in batches of its own, none larger than the batch size', () => {
    const batches = batchesOf(fleet(1000, ['east', 'west', 'north']));
    expect(batches.every((b) => b.sddcs.length <= BATCH_SIZE)).toBe(true);
    expect(batches.map((b) => `${b.dataCenter}:${b.sddcs.length}`)).toEqual([
      'east:100',
      'east:100',
      'east:100',
      'east:34',
      'west:100',
      'west:100',
      'west:100',
      'west:33',
      'north:100',
      'north:100',
      'north:100',
      'north:33',
    ]);
    expect(batches.flatMap((b) => b.sddcs).sort()).toEqual(
      fleet(1000, ['x'])
        .map((s) => s.name)
        .sort(),
    );
    for (const b of batches)
      expect(b.sddcs.every((n) => Number(n.slice(5)) % 3 === ['east', 'west', 'north'].indexOf(b.dataCenter))).toBe(true);
  });

  it('gives a small fleet one batch per data center', () => {
    expect(
      batchesOf([
        { name: 'a', dataCenter: 'east' },
        { name: 'b', dataCenter: 'west' },
        { name: 'c', dataCenter: 'east' },
      ]),
    ).toEqual([
      { dataCenter: 'east', sddcs: ['a', 'c'] },
      { dataCenter: 'west', sddcs: ['b'] },
    ]);
  });

  it('refuses a batch size that is not a positive whole number', () => {
    expect(() => batchesOf([], 0)).toThrow(RangeError);
  });
});
