import { reportOf } from '../../src/cli/cancel-report';
import { renderText, type CancelResult } from '../../src/cli/cancel';
import type { DeployReading, PublishReading, SddcReading } from '../../src/cli/run-progress';
import type { PublishProgress } from '../../src/shared/publish-input';

const MiB = 2 ** 20;

function row(sddc: string, status: SddcReading['status'], reason?: string): SddcReading {
  return { sddc, phase: 'done', source: null, bytesDone: 0, bytesTotal: MiB, status, ...(reason ? { reason } : {}) };
}

function deploy(sddcs: SddcReading[], more: Partial<DeployReading> = {}): DeployReading {
  return {
    kind: 'deploy',
    workflowId: 'deploy:app:1.0.0:x',
    runId: 'r',
    status: 'cancelled',
    image: 'app',
    version: '1.0.0',
    transfers: [],
    sddcsTotal: sddcs.length,
    counts: {},
    sddcs,
    notStarted: 0,
    ...more,
  };
}

function publish(progress: Partial<PublishProgress>, deployed?: DeployReading): PublishReading {
  return {
    kind: 'publish',
    workflowId: 'publish:app:1.0.0',
    runId: 'r',
    status: 'cancelled',
    image: 'app',
    version: '1.0.0',
    transfers: [],
    progress: {
      phase: 'cancelled',
      bytesTotal: MiB,
      bytesStaged: MiB,
      blocksTotal: 1,
      blocksStaged: 1,
      ...progress,
    } as PublishProgress,
    bytesTotal: MiB,
    bytesStaged: MiB,
    bytesInspected: MiB,
    replicas: {},
    ...(deployed ? { deploy: deployed } : {}),
  };
}

const text = (report: ReturnType<typeof reportOf>, workflowId = 'publish:app:1.0.0'): string[] =>
  renderText({
    ...report,
    workflowId,
    status: 'cancelled',
    stopped: true,
    resolvedFrom: null,
    taskQueue: 'vm-images',
    workerPolling: null,
  } satisfies CancelResult);

describe('what a cancel reports', () => {
  it('a publish stopped before its version was available says what it removed', () => {
    const report = reportOf(publish({ cleanup: ['12 staged blocks', 'catalog record marked cancelled'] }));
    expect(text(report)).toEqual([
      'publish:app:1.0.0: cancelled',
      '  cleaned up: 12 staged blocks',
      '  cleaned up: catalog record marked cancelled',
    ]);
  });

  it('a publish stopped after its version was available says it stays, and what is left', () => {
    const left =
      'west-replica: stale, blob is missing (replication cancelled by publish:app:1.0.0; `vmhub verify app@1.0.0` copies it again)';
    const report = reportOf(publish({ done: ['published app@1.0.0: available'], left: [left] }));
    expect(text(report)).toEqual([
      'publish:app:1.0.0: cancelled',
      '  done: published app@1.0.0: available',
      '  cleaned up: nothing; what is done stays',
      `  left: ${left}`,
    ]);
  });

  it("a publish stopped while it deploys lists its deploy's SDDCs and the deploy that finishes the one left", () => {
    const cancelled = row('west-1', 'failed', 'cancelled: the agent stopped and removed its partial download');
    const report = reportOf(
      publish({ done: ['published app@1.0.0: available'] }, deploy([row('east-1', 'deployed'), cancelled])),
    );
    expect(report).toEqual({
      done: ['published app@1.0.0: available'],
      cleanup: ['west-1: cancelled: the agent stopped and removed its partial download'],
      left: ['not deployed to west-1; `vmhub deploy app@1.0.0 --to west-1` deploys it'],
      sddcs: [
        { sddc: 'east-1', status: 'deployed', reason: null },
        { sddc: 'west-1', status: 'cancelled', reason: 'the agent stopped and removed its partial download' },
      ],
    });
    expect(text(report)).toEqual([
      'publish:app:1.0.0: cancelled',
      '  done: published app@1.0.0: available',
      '  SDDC    STATUS     REASON',
      '  east-1  deployed',
      '  west-1  cancelled  the agent stopped and removed its partial download',
      '  left: not deployed to west-1; `vmhub deploy app@1.0.0 --to west-1` deploys it',
    ]);
  });

  it('a skipped SDDC is not left to deploy again, and one that failed is', () => {
    const report = reportOf(
      deploy([row('tiny', 'skipped', 'does not fit: needs 4 CPUs'), row('east-2', 'failed', 'NoSource: x')]),
    );
    expect(report.left).toEqual(['not deployed to east-2; `vmhub deploy app@1.0.0 --to east-2` deploys it']);
    expect(report.cleanup).toEqual([]);
  });

  it('a fleet names the batches that never started and the SDDCs its finished batches do not list', () => {
    const rows = [
      row('east-1', 'failed', 'cancelled: the agent stopped and removed its partial download'),
      row('east-2', 'deployed'),
    ];
    const report = reportOf(deploy(rows, { sddcsTotal: 300, notStarted: 100 }));
    expect(report.done).toEqual(['198 more SDDCs ended in batches that finished (`vmhub show app@1.0.0` lists every SDDC)']);
    expect(report.left).toEqual([
      'not deployed to east-1, 100 SDDCs whose batches did not start; the same deploy again (`vmhub deploy app@1.0.0 --to …`) finishes it: the SDDCs that have the image end already-present',
    ]);
  });

  it('a run still running leaves nothing yet, and one that did nothing says there was nothing to clean up', () => {
    expect(reportOf(deploy([row('east-1', 'failed', 'cancelled')], { status: 'running' })).left).toEqual([]);
    expect(text(reportOf(publish({})))).toEqual(['publish:app:1.0.0: cancelled', '  nothing to clean up']);
  });
});
