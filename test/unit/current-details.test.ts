import type { SddcProgress } from '../../src/shared/deploy-input';
import {
  deployingLine,
  detailsText,
  outcomeLine,
  percent,
  replicatingLine,
  sddcTable,
  stagingLine,
} from '../../src/workflows/current-details';

const GiB = 2 ** 30;

describe('current details', () => {
  it.each([
    [0, 100, '0 %'],
    [45, 100, '45 %'],
    [999, 1000, '99 %'],
    [1000, 1000, '100 %'],
    [5, 0, '0 %'],
  ])('%d of %d is %s', (done, total, text) => {
    expect(percent(done, total)).toBe(text);
  });

  it('says how far staging is', () => {
    expect(stagingLine(0.45 * 1.5 * GiB, 1.5 * GiB)).toBe('staging 45 % of 1.5 GiB');
  });

  it('counts replicas done', () => {
    expect(replicatingLine(['west-replica', 'east-replica'], 1)).toBe('replicating to west-replica, east-replica: 1 of 2 done');
    expect(replicatingLine([], 0)).toBe('no replica locations');
  });

  it.each([
    [[], 3, false, 'deploying: 0 of 3 done'],
    [
      [
        { sddc: 'east-1', status: 'deployed' as const },
        { sddc: 'east-3', status: 'failed' as const },
      ],
      3,
      false,
      'deploying: 2 of 3 done, east-3 failed',
    ],
    [
      [
        { sddc: 'east-1', status: 'already-present' as const },
        { sddc: 'tiny', status: 'skipped' as const },
      ],
      2,
      true,
      'deployed: 2 of 2 done, 1 skipped',
    ],
  ])('deploy rows %j of %d (ended %s) read %s', (rows, total, ended, text) => {
    expect(deployingLine(rows, total, ended)).toBe(text);
  });

  it('names a few failed SDDCs and counts the rest', () => {
    const failed = Array.from({ length: 8 }, (_, i) => `east-${i + 1}`);
    expect(outcomeLine('deploying', { failed: 12, deployed: 20 }, 100, failed)).toBe(
      'deploying: 32 of 100 done, east-1, east-2, east-3, east-4, east-5, 7 more failed',
    );
  });

  it('tables the SDDCs, escaping what would break a row', () => {
    const rows: SddcProgress[] = [
      { sddc: 'east-1', phase: 'downloading', source: 'east-primary', bytesDone: 0, bytesTotal: 1 },
      { sddc: 'east-3', phase: 'done', source: null, bytesDone: 0, bytesTotal: 1, status: 'failed', reason: 'NoAgent: a | b\nc' },
    ];
    expect(sddcTable(rows).split('\n')).toEqual([
      '| SDDC | state | from |',
      '| --- | --- | --- |',
      '| east-1 | downloading | east-primary |',
      '| east-3 | failed: NoAgent: a \\| b c | - |',
    ]);
    expect(sddcTable([])).toBe('');
  });

  it('puts the headline first and drops empty lines', () => {
    expect(detailsText('Publish x 1.0.0', 'staging 1 % of 1.0 GiB', '')).toBe('**Publish x 1.0.0**\n\nstaging 1 % of 1.0 GiB');
  });
});
