import * as retentionCommand from '../../src/cli/retention';
import * as retireCommand from '../../src/cli/retire';
import * as schedulesCommand from '../../src/cli/schedules';
import * as verifyCommand from '../../src/cli/verify';
import * as verifySddcsCommand from '../../src/cli/verify-sddcs';
import * as statusCommand from '../../src/cli/status';
import { VmhubError } from '../../src/shared/errors';
import {
  assertDeployable,
  lifecycleLines,
  lifecycleMark,
  pastEndOfLife,
  type LifecycleState,
} from '../../src/lifecycle/deprecation';
import { validateRetireInput, validateVerifyInput } from '../../src/shared/lifecycle-input';
import { replicaDifference, type BlobState } from '../../src/lifecycle/replica-check';
import { validateKeep, versionsToRetire } from '../../src/lifecycle/retention';
import { describeInterval, lifecycleSchedules } from '../../src/temporal/schedules';

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
    expect(lifecycleLines(version(), now)).toEqual([]);
    expect(lifecycleLines(version({ deprecatedAt: before, endOfLife: before, message: 'use 2.0.0' }), now)).toEqual([
      'deprecated 2027-05-31T00:00:00.000Z, end of life 2027-05-31T00:00:00.000Z (passed): use 2.0.0',
    ]);
    expect(
      lifecycleLines({ ...version(undefined, 'retired'), retired: { at: now, by: { workflowId: 'retire:app:1.0.0' } } }, now),
    ).toEqual(['retired    2027-06-01T00:00:00.000Z by workflow retire:app:1.0.0']);
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
      ['vmhub-verify-sddcs', 'VerifySddcs', '1 day'],
      ['vmhub-apply-retention', 'ApplyRetention', '1 hour'],
    ]);
    expect(lifecycleSchedules({})[1].input).toEqual({ repair: false });
    expect(lifecycleSchedules({ VMHUB_REPAIR_DRIFT: '1' })[1].input).toEqual({ repair: true });
    expect(describeInterval(lifecycleSchedules({ VMHUB_VERIFY_EVERY: '6h' })[0].every)).toBe('6 hours');
  });

  it.each(['soon', '10s', ''])('refuses the interval %j with InvalidInput', (every) => {
    expect(typeOf(() => lifecycleSchedules({ VMHUB_RETENTION_EVERY: every }))).toBe('InvalidInput');
  });
});

describe('lifecycle CLI renderers', () => {
  it('retire says what went where, or that there was nothing to do', () => {
    const base = { image: 'app', version: '1.0.0', workflowId: 'retire:app:1.0.0' };
    expect(
      retireCommand.renderText({
        ...base,
        status: 'retired',
        blobsRemoved: ['east-primary', 'west-replica'],
        sddcs: [{ sddc: 'east-1', files: ['/ds/a.iso', '/ds/a.iso.sha256'], libraryItem: 'item-7' }],
      }),
    ).toEqual([
      'retired app@1.0.0  (workflow retire:app:1.0.0)',
      'blobs    removed from east-primary, west-replica',
      'sddc     east-1         2 files removed, library item item-7 deleted',
    ]);
    expect(retireCommand.renderText({ ...base, status: 'already-retired', blobsRemoved: [], sddcs: [] })).toEqual([
      'app@1.0.0 was retired already by retire:app:1.0.0; nothing to do',
    ]);
  });

  it('verify lists what differed and whether it was repaired', () => {
    expect(
      verifyCommand.renderText({
        workflowId: 'verify:all:1',
        versionsChecked: 2,
        replicasChecked: 2,
        findingsTotal: 1,
        findings: [{ image: 'app', version: '1.0.0', location: 'west-replica', reason: 'blob is missing', repaired: false }],
      }),
    ).toEqual([
      'checked 2 replicas of 2 versions  (workflow verify:all:1)',
      '1 differed from the primary:',
      '  app@1.0.0                    west-replica   NOT repaired: blob is missing',
    ]);
    expect(
      verifyCommand.renderText({
        workflowId: 'verify:all:2',
        versionsChecked: 1,
        replicasChecked: 1,
        findingsTotal: 0,
        findings: [],
        versionsLeft: 3,
      }),
    ).toEqual([
      'checked 1 replica of 1 version  (workflow verify:all:2)',
      'every replica matches its primary',
      "3 versions left for a later run: this run's share of VMHUB_VERIFY_BYTES_PER_DAY is read",
    ]);
  });

  it('verify --sddcs lists each finding, whether it was repaired, and what is left to hash; status prints the same', () => {
    const result = {
      sddcsChecked: 2,
      copiesChecked: 5,
      copiesHashed: 2,
      copiesDeferred: 1,
      findingsTotal: 2,
      repaired: 1,
      unrepaired: 0,
      findings: [
        { sddc: 'dir-1', image: 'app', version: '1.0.0', kind: 'edited' as const, detail: 'other bytes', repaired: true },
        { sddc: 'lib-1', image: 'app', version: '1.0.0', kind: 'not-checked' as const, detail: 'no agent' },
      ],
    };
    const lines = [
      'checked 5 copies on 2 SDDCs, 2 hashed, 1 left to hash on a later run  (workflow verify-sddcs:all:1)',
      '2 found:',
      '  app@1.0.0                    dir-1          edited           repaired: other bytes',
      '  app@1.0.0                    lib-1          not-checked      no agent',
    ];
    expect(verifySddcsCommand.renderText({ ...result, workflowId: 'verify-sddcs:all:1' })).toEqual(lines);
    const status = { type: 'VerifySddcs', workflowId: 'verify-sddcs:all:1', runId: null, status: 'completed', sddcs: [] };
    const shown = statusCommand.renderText({ ...status, startTime: null, closeTime: null, result, failure: null } as never);
    expect(shown.slice(-4)).toEqual(lines);
  });

  it('retention and schedules', () => {
    const policies = { action: 'show' as const, cleared: null, schedule: 'vmhub-apply-retention' };
    expect(retentionCommand.renderText({ ...policies, policies: [] })).toEqual(['no retention policy']);
    expect(retentionCommand.renderText({ ...policies, policies: [{ image: 'app', keep: 3 }] })[1]).toBe(
      'applied by schedule vmhub-apply-retention',
    );
    const missing = {
      scheduleId: 'vmhub-verify-replicas',
      workflowType: null,
      everyMs: null,
      taskQueue: null,
      nextRun: null,
      lastRun: null,
    };
    expect(schedulesCommand.renderText({ schedules: [{ ...missing, state: 'missing' }] })).toEqual([
      'SCHEDULE               STATE    WORKFLOW  EVERY  TASK QUEUE  NEXT RUN  LAST RUN',
      'vmhub-verify-replicas  missing  -         -      -           -         -',
      '',
      'missing: the control worker creates it when it starts (`npm run worker`)',
    ]);
    const active = { ...missing, state: 'active' as const, workflowType: 'VerifyReplicas', taskQueue: 'vm-images' };
    expect(
      schedulesCommand.renderText({
        schedules: [
          { ...active, everyMs: 86_400_000, nextRun: '2027-06-02T00:00:00.000Z' },
          { ...active, scheduleId: 'vmhub-apply-retention', workflowType: 'ApplyRetention', everyMs: 7_200_000 },
        ],
      }),
    ).toEqual([
      'SCHEDULE               STATE   WORKFLOW        EVERY    TASK QUEUE  NEXT RUN                  LAST RUN',
      'vmhub-verify-replicas  active  VerifyReplicas  1 day    vm-images   2027-06-02T00:00:00.000Z  never',
      'vmhub-apply-retention  active  ApplyRetention  2 hours  vm-images   -                         never',
    ]);
  });
});
