import type { DeployResult } from '../../src/shared/deploy-input';
import { resultTable } from '../../src/cli/operations';

const MiB = 2 ** 20;

describe('the CLI result table', () => {
  it('says what each SDDC fetched and what it copied from its own disk, and lists the skipped ones apart', () => {
    const result: DeployResult = {
      image: 'edge',
      version: '1.0.1',
      results: [
        {
          sddc: 'holder',
          dataCenter: 'dc-east',
          status: 'deployed',
          source: 'east-primary',
          path: '/ds/a',
          bytesFetched: 16 * MiB,
          bytesReusedLocally: 1008 * MiB,
        },
        {
          sddc: 'fresh',
          dataCenter: 'dc-east',
          status: 'deployed',
          source: 'east-primary',
          path: '/ds/b',
          bytesFetched: 1024 * MiB,
          bytesReusedLocally: 0,
        },
        { sddc: 'tiny', dataCenter: 'dc-east', status: 'skipped', source: null, reason: 'does not fit' },
      ],
    };
    const [header, holder, fresh, skipped, tiny] = resultTable(result);
    expect(header).toMatch(/^SDDC +DATA CENTER +STATUS +SOURCE +TRANSFERRED +WHERE \/ REASON$/);
    expect(holder).toMatch(/fetched 16\.0 MiB, 1008 MiB local +\/ds\/a$/);
    expect(fresh).toMatch(/fetched 1\.0 GiB +\/ds\/b$/);
    expect(fresh).not.toMatch(/local/);
    expect(skipped).toBe('skipped:');
    expect(tiny).toMatch(/^ {2}tiny +does not fit$/);
  });
});
