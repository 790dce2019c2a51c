import type { ImageVersionRecord } from '../../src/catalog/image-records';
import * as cancel from '../../src/cli/cancel';
import { planPublish } from '../../src/cli/operations';
import { pickRun, stateRun, versionRunId } from '../../src/cli/run-ref';
import * as runs from '../../src/cli/runs';
import { typedError } from './typed-error';

const publisher = { workflowId: 'publish:app:from-image-20250101T000000000Z-abc123', runId: 'r1' };
const retirer = { workflowId: 'retire:app:1.0.0', runId: 'r2' };

function record(status: ImageVersionRecord['status'], extra: Partial<ImageVersionRecord> = {}): ImageVersionRecord {
  return {
    image: 'app',
    version: '1.0.0',
    status,
    owner: publisher,
    format: 'iso',
    sizeBytes: 1,
    sha256: 'a'.repeat(64),
    location: { storage: 'dc-east', container: 'images', blob: 'app/1.0.0/app-1.0.0.iso' },
    blockSize: 1,
    blockCount: 1,
    replicas: [],
    createdAt: new Date(0),
    updatedAt: new Date(0),
    ...extra,
  };
}

describe('workflow IDs of a version', () => {
  it('reads publish:<image>:<version> and retire:<image>:<version> apart, and nothing else', () => {
    expect(versionRunId('publish:app:1.0.0')).toEqual({ kind: 'publish', image: 'app', version: '1.0.0' });
    expect(versionRunId('retire:app:2.0.0-rc.1+b7')).toEqual({ kind: 'retire', image: 'app', version: '2.0.0-rc.1+b7' });
    for (const other of [
      'publish:app:from-image-20250101T000000000Z-abc123',
      'publish:app:1.0.0:republish-20250101T000000000Z-abc123',
      'deploy:app:1.0.0:20250101T000000000Z-abc123',
      'publish:App:1.0.0',
      'verify:app:1.0.0',
    ]) {
      expect(versionRunId(other)).toBeUndefined();
    }
  });

  it('the run behind a version is its publisher once published, its retire once retired', () => {
    expect(stateRun('publish', record('available'))).toBe(publisher);
    expect(stateRun('publish', record('retired', { retired: { by: retirer } }))).toBe(publisher);
    expect(stateRun('retire', record('retired', { retired: { by: retirer } }))).toBe(retirer);
    // Still in flight, or failed: the ID's own run, or the search, answers.
    expect(stateRun('publish', record('uploading'))).toBeUndefined();
    expect(stateRun('publish', record('failed'))).toBeUndefined();
    expect(stateRun('retire', record('retiring', { retired: { by: retirer } }))).toBeUndefined();
    expect(stateRun('retire', record('available'))).toBeUndefined();
    expect(stateRun('publish', null)).toBeUndefined();
  });

  it('of the runs found by image and version: the one that completed first, else the newest running, else the newest', () => {
    const at = (n: number) => new Date(Date.UTC(2025, 0, n));
    const run = (id: string, name: string, day: number) => ({ id, status: { name }, startTime: at(day) });
    const noOp = run('republish', 'COMPLETED', 3);
    const first = run('from-image', 'COMPLETED', 2);
    const conflict = run('conflict', 'FAILED', 4);
    expect(pickRun([conflict, noOp, first])?.id).toBe('from-image');
    expect(pickRun([run('a', 'RUNNING', 1), run('b', 'RUNNING', 2), run('c', 'FAILED', 3)])?.id).toBe('b');
    expect(pickRun([run('a', 'FAILED', 1), run('b', 'CANCELLED', 2)])?.id).toBe('b');
    expect(pickRun([])).toBeUndefined();
  });
});

describe('a publish of a version the catalog knows', () => {
  const input = { source: 'app.iso', image: 'app', version: '1.0.0' };
  const same = 'A'.repeat(64);

  it('starts under the version ID when the version is new, or its last publish failed or was cancelled', () => {
    expect(planPublish(input, null)).toEqual({ kind: 'start' });
    expect(planPublish(input, record('failed'))).toEqual({ kind: 'start' });
    expect(planPublish(input, record('cancelled'))).toEqual({ kind: 'start' });
    expect(planPublish(input, record('uploading', { owner: { workflowId: 'publish:app:1.0.0', runId: 'r' } }))).toEqual({
      kind: 'start',
    });
    expect(planPublish(input, record('uploading'))).toEqual({ kind: 'owned', owner: publisher });
  });

  it('answers from the catalog for the same --sha256; compares in a run of its own when the bytes are not known or it deploys', () => {
    expect(planPublish({ ...input, sha256: same }, record('available'))).toEqual({ kind: 'published' });
    expect(planPublish(input, record('available'))).toEqual({ kind: 'compare' });
    expect(planPublish({ ...input, sha256: same, deployTo: ['east-1'] }, record('available'))).toEqual({ kind: 'compare' });
  });

  it('other bytes, or a retired version, are a VersionConflict naming the run behind the version', () => {
    expect(
      typedError('VersionConflict', () => planPublish({ ...input, sha256: 'b'.repeat(64) }, record('available'))).message,
    ).toBe(
      `app@1.0.0 is already published by ${publisher.workflowId} with SHA-256 ${'a'.repeat(64)}, not ${'b'.repeat(64)}; publish other bytes under a new version`,
    );
    expect(typedError('VersionConflict', () => planPublish(input, record('retired', { retired: { by: retirer } }))).message).toBe(
      'app@1.0.0 is retired (by retire:app:1.0.0); publish it under a new version',
    );
  });
});

describe('a run no worker polls', () => {
  const unpolled = { taskQueue: 'vmhub', workerPolling: false };

  it('runs marks it and says what to do; cancel says the cancel waits for a worker, and how to stop it now', () => {
    const row = {
      workflowId: 'publish:app:1.0.0',
      type: 'RetireImage',
      status: 'running',
      image: 'app',
      version: '1.0.0',
      startTime: '2025-01-01T00:00:00.000Z',
      closeTime: null,
    };
    const text = runs.renderText({ runs: [{ ...row, ...unpolled }] });
    expect(text[1]).toMatch(/ retire +running \(no worker\) +app@1\.0\.0 +publish:app:1\.0\.0$/);
    expect(text[2]).toMatch(
      /^no worker polls task queue vmhub: .*VMHUB_TASK_QUEUE=vmhub npm run worker.*vmhub cancel --terminate/,
    );
    expect(
      cancel.renderText({
        workflowId: 'publish:app:1.0.0',
        status: 'running',
        stopped: false,
        done: [],
        cleanup: [],
        left: [],
        sddcs: [],
        resolvedFrom: null,
        ...unpolled,
      }),
    ).toEqual([
      'publish:app:1.0.0: running — no worker polls task queue vmhub',
      '  cancel requested, but no worker polls task queue vmhub, so nothing could stop the run or clean up',
      '  start a worker on it (VMHUB_TASK_QUEUE=vmhub npm run worker) and the run stops and cleans up,',
      '  or stop it at once without cleanup: vmhub cancel --terminate publish:app:1.0.0',
    ]);
  });
});
