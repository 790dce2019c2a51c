import { attemptOf, originalSource, type DeploymentRecord } from '../../src/catalog/deployment-records';

const key = { image: 'app', version: '1.0.0', sddc: 'east-1' };
const at = new Date(Date.UTC(2026, 0, 1));
const run = { workflowId: 'deploy:app:1.0.0:x', runId: 'r1' };

describe('deployment attempts', () => {
  it('an attempt keeps the outcome, its source, its reason, the time and the run, and nothing undefined', () => {
    expect(attemptOf({ status: 'failed', source: 'west-replica', error: 'replica stale', run }, at)).toEqual({
      status: 'failed',
      source: 'west-replica',
      reason: 'replica stale',
      at,
      run,
    });
    expect(Object.keys(attemptOf({ status: 'skipped', source: undefined }, at))).toEqual(['status', 'at']);
  });

  it('the original source is the origin, whatever the latest attempt says', () => {
    const record: DeploymentRecord = {
      ...key,
      status: 'already-present',
      updatedAt: at,
      origin: { status: 'deployed', source: 'west-replica', at },
      attempts: [{ status: 'already-present', at }],
    };
    expect(originalSource(record)).toBe('west-replica');
  });

  it('a record with attempts and no origin never deployed since its last removal', () => {
    const record: DeploymentRecord = {
      ...key,
      status: 'failed',
      source: 'east-primary',
      updatedAt: at,
      attempts: [{ status: 'failed', at }],
    };
    expect(originalSource(record)).toBeUndefined();
  });

  it('a record written before attempts were kept: its own source if it deployed', () => {
    const legacy: DeploymentRecord = { ...key, status: 'deployed', source: 'west-replica', updatedAt: at };
    expect(originalSource(legacy)).toBe('west-replica');
    expect(originalSource({ ...legacy, attempts: [] })).toBe('west-replica');
    expect(originalSource({ ...legacy, status: 'failed' })).toBeUndefined();
  });
});
