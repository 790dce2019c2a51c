import { VmhubError } from '../../src/errors';
import {
  assertDeployable,
  deprecationLine,
  lifecycleMark,
  parseEndOfLife,
  pastEndOfLife,
  type LifecycleState,
} from '../../src/lifecycle/deprecation';
import { parseVersionRef, validateRetireInput, validateVerifyInput } from '../../src/lifecycle/input';
import { replicaDifference, type BlobState } from '../../src/lifecycle/replica-check';
import { validateKeep, versionsToRetire } from '../../src/lifecycle/retention';
import { describeInterval, lifecycleSchedules } from '../../src/schedules';

const now = new Date('2027-06-01T00:00:00Z');
const before = new Date('2027-05-31T00:00:00Z');
const after = new Date('2027-06-02T00:00:00Z');
const version = (deprecation?: LifecycleState['deprecation'], status = 'available'): LifecycleState => ({
  image: 'app',
  version: '1.0.0',
  status,
  deprecation,
});

function typeOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    return err instanceof VmhubError ? err.type : 'untyped';
  }
}

describe('deprecation and end of life', () => {
  it('a deploy is refused past the end of life unless forced, and a retired version always', () => {
    expect(typeOf(() => assertDeployable(version(), now))).toBeUndefined();
    expect(typeOf(() => assertDeployable(version({ deprecatedAt: before }), now))).toBeUndefined();
    expect(typeOf(() => assertDeployable(version({ deprecatedAt: before, endOfLife: after }), now))).toBeUndefined();
    expect(typeOf(() => assertDeployable(version({ deprecatedAt: before, endOfLife: now }), now))).toBe('ImageRetired');
    expect(typeOf(() => assertDeployable(version({ deprecatedAt: before, endOfLife: before }), now, true))).toBeUndefined();
    expect(typeOf(() => assertDeployable(version(undefined, 'retired'), now, true))).toBe('ImageRetired');
    expect(typeOf(() => assertDeployable(version(undefined, 'retiring'), now, true))).toBe('ImageRetired');
  });

  it('listings mark deprecated and end-of-life versions', () => {
    expect(lifecycleMark(version(), now)).toBe('');
    expect(lifecycleMark(version({ deprecatedAt: before, endOfLife: after }), now)).toBe('deprecated');
    expect(lifecycleMark(version({ deprecatedAt: before, endOfLife: before }), now)).toBe('end of life');
    expect(pastEndOfLife({ deprecatedAt: before }, now)).toBe(false);
    expect(deprecationLine(version(), now)).toBeUndefined();
    expect(deprecationLine(version({ deprecatedAt: before, endOfLife: before, message: 'use 2.0.0' }), now)).toBe(
      'deprecated 2027-05-31T00:00:00.000Z, end of life 2027-05-31T00:00:00.000Z (passed): use 2.0.0',
    );
  });

  it.each(['2027-01-31', '2027-01-31T12:00:00Z', '2027-01-31T12:00:00+02:00'])('accepts the end-of-life date %s', (text) => {
    expect(parseEndOfLife(text).getTime()).toBe(new Date(text).getTime());
  });

  it.each(['tomorrow', '31/01/2027', '2027-13-45', ''])('refuses the end-of-life date %j with InvalidInput', (text) => {
    expect(typeOf(() => parseEndOfLife(text))).toBe('InvalidInput');
  });
});

describe('versionsToRetire', () => {
  const versions = ['1.0.0', '1.10.0', '1.2.0', '2.0.0-rc.1', '2.0.0'].map((v) => ({ version: v, status: 'available' }));

  it('keeps the newest N by semantic version, not by text', () => {
    expect(versionsToRetire(versions, 2, new Set())).toEqual(['1.10.0', '1.2.0', '1.0.0']);
  });

  it('keeps what an SDDC holds, without counting it towards N', () => {
    expect(versionsToRetire(versions, 2, new Set(['1.2.0']))).toEqual(['1.10.0', '1.0.0']);
  });

  it('leaves versions that are not available alone, and has nothing to do under N', () => {
    const mixed = [...versions, { version: '0.9.0', status: 'failed' }, { version: '0.8.0', status: 'retired' }];
    expect(versionsToRetire(mixed, 5, new Set())).toEqual([]);
    expect(versionsToRetire(mixed, 4, new Set())).toEqual(['1.0.0']);
  });

  it.each([0, -1, 1.5, '3', 10_001])('refuses keep %j with InvalidInput', (keep) => {
    expect(typeOf(() => validateKeep(keep))).toBe('InvalidInput');
  });
});

describe('replicaDifference', () => {
  const primary: BlobState = { blockIds: ['a', 'b', 'c'], sizeBytes: 30, sha256: 'f'.repeat(64) };

  it.each([
    ['an equal copy', primary, undefined],
    ['no blob', undefined, 'blob is missing'],
    ['another size', { ...primary, sizeBytes: 31 }, "size is 31 bytes, the primary's 30"],
    ['a blob written in one piece', { ...primary, blockIds: [] }, '0 committed blocks, the primary has 3'],
    ['one block changed', { ...primary, blockIds: ['a', 'x', 'c'] }, "committed block 1 differs from the primary's"],
    ['no SHA-256 metadata', { ...primary, sha256: undefined }, `SHA-256 metadata is unset, the primary's ${'f'.repeat(64)}`],
  ])('%s', (_name, replica, expected) => {
    expect(replicaDifference(primary, replica)).toBe(expected);
  });
});

describe('lifecycle inputs', () => {
  it('parses <image>@<version> and refuses anything else with InvalidInput', () => {
    expect(parseVersionRef('app@1.2.3')).toEqual({ image: 'app', version: '1.2.3' });
    for (const bad of ['app', 'app@', '@1.0.0', 'App@1.0.0', 'app@latest'])
      expect(typeOf(() => parseVersionRef(bad))).toBe('InvalidInput');
  });

  it('checks workflow inputs', () => {
    expect(typeOf(() => validateRetireInput({ image: 'app' }))).toBe('InvalidInput');
    expect(typeOf(() => validateRetireInput([]))).toBe('InvalidInput');
    expect(validateVerifyInput(undefined)).toEqual({});
    expect(typeOf(() => validateVerifyInput({ version: '1.0.0' }))).toBe('InvalidInput');
  });
});

describe('lifecycle schedules', () => {
  it('verify daily and apply retention hourly by default; the environment can change either', () => {
    expect(lifecycleSchedules({}).map((s) => [s.scheduleId, s.workflowType, describeInterval(s.every)])).toEqual([
      ['vmhub-verify-replicas', 'VerifyReplicas', '1 day'],
      ['vmhub-apply-retention', 'ApplyRetention', '1 hour'],
    ]);
    expect(describeInterval(lifecycleSchedules({ VMHUB_VERIFY_EVERY: '6h' })[0].every)).toBe('6 hours');
  });

  it.each(['soon', '10s', ''])('refuses the interval %j with InvalidInput', (every) => {
    expect(typeOf(() => lifecycleSchedules({ VMHUB_RETENTION_EVERY: every }))).toBe('InvalidInput');
  });
});
