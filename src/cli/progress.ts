import { MultiBar, Presets, type SingleBar } from 'cli-progress';
import type { WorkflowHandle } from '@temporalio/client';
import type { DeployResult, SddcProgress } from '../shared/deploy-input';
import { deployOutcome } from './operations';
import {
  readProgress as readRun,
  type ByteProgress,
  type DeployReading,
  type PublishReading,
  type RunReadingOf,
} from './run-progress';
import type { PublishResult } from '../shared/publish-input';
import { formatBytes } from '../shared/units';
import { CliError } from './errors';
import type { CliIo } from './output';

/** Where a publish or deploy stands, as `status` reports it. */
export interface ProgressSnapshot {
  /** A publish's own progress; absent for a deploy. */
  publish?: { phase: string; bytesDone: number; bytesTotal: number };
  /** The deploy's rows: a deploy's own, or those of the deploy a publish started. */
  sddcs: SddcProgress[];
}

/**
 * Where a run stands, as `status` reports it: the run's query merged with its activities' heartbeats
 * (src/cli/run-progress.ts), so bytes move between the blocks the workflow counts. While a publish
 * replicates, its bytes are the replicas'; once it deploys, the rows are its child deploy's. The bars
 * draw the same reading, through PublishBars. `runId` reads a run other than the workflow ID's latest.
 */
export async function readProgress(handle: WorkflowHandle, runId?: string): Promise<ProgressSnapshot | undefined> {
  const reading = await readReading(handle, runId);
  if (!reading) return undefined;
  if (reading.kind === 'deploy') return { sddcs: rowsOf(reading) };
  const replicas = Object.values(reading.replicas);
  const bytes =
    reading.progress.phase === 'replicating' && replicas.length > 0
      ? {
          bytesDone: replicas.reduce((n, r) => n + r.bytesDone, 0),
          bytesTotal: replicas.reduce((n, r) => n + r.bytesTotal, 0),
        }
      : { bytesDone: reading.bytesStaged, bytesTotal: reading.bytesTotal };
  return {
    publish: { phase: reading.progress.phase, ...bytes },
    sddcs: sddcRows(reading),
  };
}

function readReading(handle: WorkflowHandle, runId?: string): Promise<RunReadingOf | undefined> {
  return readRun(handle.client, handle.workflowId, runId).catch(() => undefined);
}

/** A deploy's rows, or those of the deploy a publish started. */
function sddcRows(reading: RunReadingOf): SddcProgress[] {
  if (reading.kind === 'deploy') return rowsOf(reading);
  return reading.deploy ? rowsOf(reading.deploy) : [];
}

/** One bar as drawn: what it counts, its state, and its bytes. */
export interface BarState {
  key: string;
  label: string;
  state: string;
  done: number;
  total: number;
}

/** The phases after a publish's own bytes are committed and cataloged. */
const PUBLISHED: ReadonlySet<string> = new Set(['replicating', 'deploying', 'done']);

/**
 * A publish's bars, which only ever move forward: one for the image's bytes (staged, committed,
 * cataloged: then `published`), and from replication on one of its own for the replicas' bytes, so
 * no bar goes from `100 % committing` back to `1 % replicating`. Fed one reading after another.
 */
export class PublishBars {
  private publishDone = 0;
  /** Each replica location's bytes, as far as they got; a location no longer pending has finished. */
  private readonly replicas = new Map<string, ByteProgress>();

  next(r: Pick<PublishReading, 'progress' | 'bytesTotal' | 'bytesStaged' | 'replicas'>): BarState[] {
    const { phase } = r.progress;
    if (r.bytesTotal <= 0) return [];
    const published = PUBLISHED.has(phase);
    this.publishDone = Math.max(this.publishDone, published ? r.bytesTotal : r.bytesStaged);
    const bars: BarState[] = [
      { key: 'publish', label: 'publish', state: published ? 'published' : phase, done: this.publishDone, total: r.bytesTotal },
    ];
    for (const [location, seen] of this.replicas) {
      const now = r.replicas[location];
      seen.bytesDone = now ? Math.max(seen.bytesDone, now.bytesDone) : seen.bytesTotal;
    }
    for (const [location, now] of Object.entries(r.replicas)) {
      if (!this.replicas.has(location)) this.replicas.set(location, { ...now });
    }
    if (this.replicas.size > 0) {
      const all = [...this.replicas.values()];
      const done = all.reduce((n, x) => n + x.bytesDone, 0);
      const total = all.reduce((n, x) => n + x.bytesTotal, 0);
      const state = done >= total ? 'replicated' : `replicating to ${[...this.replicas.keys()].join(', ')}`;
      bars.push({ key: 'replicas', label: 'replicas', state, done, total });
    }
    return bars;
  }
}

/** An SDDC that has the image has all its bytes, whatever its agent last reported; a failed or cancelled one has what it had. */
function rowsOf(deploy: DeployReading): SddcProgress[] {
  const whole = (s: SddcProgress) => s.status === 'deployed' || s.status === 'already-present';
  return deploy.sddcs.map((s) => (s.phase === 'done' && whole(s) ? { ...s, bytesDone: s.bytesTotal } : s));
}

/**
 * A transfer's rate within its current phase, and the time left at that rate. A new phase starts its
 * own measure; until bytes have moved for a second there is no rate, and no ETA is shown rather than a wrong one.
 */
export class PhaseRate {
  private phase: string | undefined;
  private start = { at: 0, bytes: 0 };
  private last = { at: 0, bytes: 0 };

  update(phase: string, bytes: number, now: number): void {
    if (phase !== this.phase || bytes < this.last.bytes) {
      this.phase = phase;
      this.start = { at: now, bytes };
    }
    this.last = { at: now, bytes };
  }

  /** Bytes per second in the current phase, or undefined while that is not known. */
  rate(): number | undefined {
    const seconds = (this.last.at - this.start.at) / 1000;
    const moved = this.last.bytes - this.start.bytes;
    return seconds >= 1 && moved > 0 ? moved / seconds : undefined;
  }

  /** Seconds left to reach `total`, or undefined. */
  eta(total: number): number | undefined {
    const rate = this.rate();
    if (rate === undefined || total <= this.last.bytes) return undefined;
    const seconds = (total - this.last.bytes) / rate;
    return Number.isFinite(seconds) ? seconds : undefined;
  }
}

/** 75 → "1m 15s"; nothing for a time not known. */
export function formatEta(seconds: number | undefined): string {
  if (seconds === undefined || !Number.isFinite(seconds) || seconds < 0) return '';
  const s = Math.ceil(seconds);
  if (s < 60) return `ETA ${s}s`;
  if (s < 3600) return `ETA ${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
  return `ETA ${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

export function formatRate(bytesPerSecond: number | undefined): string {
  return bytesPerSecond === undefined ? '' : `${formatBytes(Math.round(bytesPerSecond))}/s`;
}

/** The text after a bar: amount, rate and ETA (each only when known), and the state. */
export function barPayload(label: string, state: string, done: number, total: number, rate: PhaseRate): Record<string, string> {
  const parts = [`${formatBytes(done)} / ${formatBytes(total)}`, formatRate(rate.rate()), formatEta(rate.eta(total)), state];
  return { label, info: parts.filter(Boolean).join(' | ') };
}

/**
 * Bars on the progress stream while `result` is pending: one for a publish's bytes, one per SDDC of a
 * deploy. A refresh that fails leaves the bars as they were; the next one tries again.
 */
async function follow<T>(handle: WorkflowHandle, io: CliIo, result: Promise<T>): Promise<T> {
  const bars = new MultiBar(
    { format: ' {label} {bar} {percentage}% | {info}', hideCursor: true, stream: io.progress, clearOnComplete: false },
    Presets.shades_classic,
  );
  const rows = new Map<string, { bar: SingleBar; rate: PhaseRate }>();
  const draw = (key: string, label: string, state: string, done: number, total: number) => {
    let row = rows.get(key);
    const now = Date.now();
    if (!row) {
      row = { bar: bars.create(Math.max(1, total), 0), rate: new PhaseRate() };
      rows.set(key, row);
    }
    row.rate.update(state, done, now);
    row.bar.setTotal(Math.max(1, total));
    row.bar.update(done, barPayload(label, state, done, total, row.rate));
  };
  const publishBars = new PublishBars();
  const refresh = async () => {
    const reading = await readReading(handle);
    if (!reading) return;
    const sddcs = sddcRows(reading);
    const width = Math.max(8, ...sddcs.map((s) => s.sddc.length));
    for (const b of reading.kind === 'publish' ? publishBars.next(reading) : []) {
      draw(b.key, b.label.padEnd(width), b.state, b.done, b.total);
    }
    for (const s of sddcs) {
      const state = `${s.status ?? s.phase}${s.source ? ` from ${s.source}` : ''}`;
      draw(`sddc:${s.sddc}`, s.sddc.padEnd(width), state, s.bytesDone, s.bytesTotal);
    }
  };
  const stop = () => {
    if (!io.tty) return;
    bars.stop();
    io.progress.write('\u001b[?25h');
  };
  // Ctrl-C stops the following, never the workflow: the failure says how to re-attach or cancel.
  let onInterrupt = () => {};
  const interruption = new Promise<never>((_, reject) => {
    onInterrupt = () =>
      reject(
        new CliError(
          'Interrupted',
          `stopped following; workflow ${handle.workflowId} continues. Re-attach with \`vmhub wait ${handle.workflowId}\`, or stop it with \`vmhub cancel ${handle.workflowId}\``,
        ),
      );
  });
  process.once('SIGINT', onInterrupt);
  // Left behind by an interruption, the result must not reject unhandled when the connection closes.
  result.catch(() => undefined);
  let busy = false;
  const timer = setInterval(() => {
    if (busy || !io.tty) return;
    busy = true;
    void refresh()
      .catch(() => undefined)
      .finally(() => (busy = false));
  }, 500);
  try {
    return await Promise.race([result, interruption]);
  } finally {
    clearInterval(timer);
    process.removeListener('SIGINT', onInterrupt);
    stop();
  }
}

export function followPublish(handle: WorkflowHandle, io: CliIo): Promise<PublishResult> {
  return follow(handle, io, handle.result() as Promise<PublishResult>);
}

export function followDeploy(handle: WorkflowHandle, io: CliIo): Promise<DeployResult> {
  return follow(handle, io, deployOutcome(handle));
}
