import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { changedCopy, type IncrementalFigure } from '../../scripts/bench/incremental';
import { BLOCK_MIB, MiB, type PairFigure } from '../../scripts/bench/measure';
import { targets, type Figures } from '../../scripts/bench/report';

/** The bench's report: the targets judged from the figures, and the next version it measures with. */
const pair = (median: number): PairFigure => ({
  ratio: { median, min: median, max: median },
  vmhubMiBps: 1,
  baselineMiBps: 1,
  runs: [],
});
const incremental = (median: number, bytes: number | null): IncrementalFigure => ({
  ...pair(median),
  bytes,
  sizeBytes: 1000,
});

function figures(overrides: Partial<Figures> = {}): Figures {
  return {
    publish: { ...pair(1), sourceReadsPerByte: 1 },
    telemetry: { ...pair(0.98), scrapes: 12, spanRequests: 40, spanBytes: 90000 },
    incrementalPublish: incremental(5, 20),
    deploy: pair(1.2),
    deployThree: pair(1.1),
    deltaDeploy: {
      blocks: 128,
      changedBlocks: 2,
      ratio: { median: 0.2, min: 0.18, max: 0.25 },
      delta: { fetchedMiB: 16, reusedMiB: 1008, seconds: 1 },
      full: { fetchedMiB: 1024, seconds: 5 },
      runs: [],
    },
    contentLibrary: pair(1.6),
    replication: pair(1),
    incrementalReplication: incremental(4, 50),
    verifyRead: pair(1),
    memory: { idleMiB: { small: 170, large: 170 }, peakMiB: { small: 280, large: 290 }, largeOverSmall: 1.04 },
    resume: {
      sentAtKillMiB: 500,
      bytesResentMiB: 0,
      inFlightBoundMiB: 64,
      seconds: 20,
      extraSeconds: 15,
      heartbeatTimeoutSeconds: 15,
    },
    history: { small: 100, simulatedTiB: 1000, simulatedBlocks: 49933 },
    ...overrides,
  };
}

const row = (f: Figures, starts: string) => targets(f).find((t) => t.target.startsWith(starts))!;

describe('bench targets', () => {
  it('lists every row of the issue’s table, met when each figure reaches its bound', () => {
    const rows = targets(figures());
    for (const starts of [
      'incremental publish',
      'incremental replication',
      'full replication',
      'content-library deploy',
      'deploy to one SDDC',
      'three-SDDC deploy',
      'publish ≥ 0.9',
      'delta deploy (2 of 128 blocks changed) time',
      'worker peak RSS ≤ 300 MiB, 1× and 4×',
    ])
      expect(rows.find((t) => t.target.startsWith(starts))).toMatchObject({ met: true });
    expect(row(figures(), 'incremental publish').value).toBe('5.00 × faster; 0.0 MiB (2.0 %) sent');
  });

  it('misses an incremental figure whose bytes are not reported, or too many, or that is too slow', () => {
    expect(row(figures({ incrementalPublish: incremental(9, null) }), 'incremental publish')).toMatchObject({
      value: '9.00 × faster; n/a sent',
      met: false,
    });
    expect(row(figures({ incrementalReplication: incremental(9, 51) }), 'incremental replication').met).toBe(false);
    expect(row(figures({ incrementalReplication: incremental(3.9, 1) }), 'incremental replication').met).toBe(false);
  });

  it('misses a ratio under its bound, a slow delta deploy, and a peak over 300 MiB at either size', () => {
    expect(row(figures({ contentLibrary: pair(1.49) }), 'content-library deploy').met).toBe(false);
    expect(row(figures({ deployThree: pair(0.99) }), 'three-SDDC deploy').met).toBe(false);
    const slow = figures();
    slow.deltaDeploy.ratio = { median: 0.31, min: 0.2, max: 0.4 };
    expect(row(slow, 'delta deploy (')).toMatchObject({ value: '0.31 (0.20–0.40)', met: false });
    const big = figures();
    big.memory.peakMiB.small = 301;
    expect(row(big, 'worker peak RSS ≤ 300 MiB, 1× and 4×').met).toBe(false);
  });
});

describe('the next version the bench publishes', () => {
  it('changes 1 % of the blocks (at least one), never the first', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmhub-bench-next-'));
    try {
      const block = BLOCK_MIB * MiB;
      const source = path.join(dir, 'a.iso');
      fs.writeFileSync(source, Buffer.alloc(3 * block + 5));
      const next = path.join(dir, 'b.iso');
      expect(changedCopy(source, next)).toEqual({ blocks: 4, changedBlocks: 1 });
      const [a, b] = [fs.readFileSync(source), fs.readFileSync(next)];
      expect(b.length).toBe(a.length);
      const differing = [0, 1, 2, 3].filter(
        (i) => !a.subarray(i * block, (i + 1) * block).equals(b.subarray(i * block, (i + 1) * block)),
      );
      expect(differing).toHaveLength(1);
      expect(differing[0]).toBeGreaterThan(0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
