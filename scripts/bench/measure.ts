import { execFileSync } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import type { BlockBlobClient, ContainerClient } from '@azure/storage-blob';

/** What every figure of `npm run bench` measures with: sizes, repetitions, timing and the pairs' arithmetic. */
export const GiB = 2 ** 30;
export const MiB = 2 ** 20;
export const BLOCK_MIB = 8;
export const FAN_OUT = 2;
export const PER_ACTIVITY = 4;
export const CONCURRENCY = FAN_OUT * PER_ACTIVITY;
export const SIZE = Math.round(Number(process.env.BENCH_GIB ?? 1) * GiB);
export const REPEATS = Math.max(3, Number(process.env.BENCH_REPEATS ?? 5));

/**
 * An ISO-shaped image: a primary volume descriptor where ISO 9660 puts it, then incompressible-enough
 * content without spending minutes on randomness (one random block, varied per block).
 */
export function writeImage(file: string, size: number): void {
  const block = randomBytes(BLOCK_MIB * MiB);
  const fd = fs.openSync(file, 'w');
  for (let at = 0, i = 0; at < size; at += block.length, i++) {
    block.writeUInt32LE(i, 0);
    if (i === 0) block.write('\x01CD001\x01', 32768, 'latin1');
    else block.write('\0\0\0\0\0\0\0', 32768, 'latin1');
    fs.writeSync(fd, block, 0, Math.min(block.length, size - at));
  }
  fs.closeSync(fd);
}

/** CPU seconds (all threads) and memory of a process, from /proc. */
export function proc(pid: number): { cpu: number; rssMiB: number; peakMiB: number } {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN);
  return {
    cpu: (Number(fields[11]) + Number(fields[12])) / 100,
    rssMiB: kib('VmRSS') / 1024,
    peakMiB: kib('VmHWM') / 1024,
  };
}

export async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; seconds: number }> {
  const t = process.hrtime.bigint();
  const value = await fn();
  return { value, seconds: Number(process.hrtime.bigint() - t) / 1e9 };
}

export function stats(values: number[]): { median: number; min: number; max: number } {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  return { median, min: sorted[0], max: sorted[sorted.length - 1] };
}

export const round = (n: number, digits = 2) => Number(n.toFixed(digits));

export interface Pair {
  vmhubSeconds: number;
  baselineSeconds: number;
  ratio: number;
  vmhubCpu: number;
  baselineCpu: number;
}

export interface PairFigure {
  /** Throughput of vmhub over that of the plain SDK: baseline seconds / vmhub seconds. */
  ratio: { median: number; min: number; max: number };
  vmhubMiBps: number;
  baselineMiBps: number;
  /** CPU seconds per GiB moved: every thread of vmhub's worker or agents, and of the bench process for the SDK. */
  cpuSecondsPerGiB?: { vmhub: number; baseline: number };
  runs: Array<{ vmhubSeconds: number; baselineSeconds: number; ratio: number }>;
}

export function pairFigure(pairs: Pair[], bytes: number, withCpu = true): PairFigure {
  const ratio = stats(pairs.map((p) => p.ratio));
  const rate = (s: number) => round(bytes / MiB / s, 0);
  return {
    ratio: { median: round(ratio.median), min: round(ratio.min), max: round(ratio.max) },
    vmhubMiBps: stats(pairs.map((p) => rate(p.vmhubSeconds))).median,
    baselineMiBps: stats(pairs.map((p) => rate(p.baselineSeconds))).median,
    cpuSecondsPerGiB: withCpu
      ? {
          vmhub: round(stats(pairs.map((p) => p.vmhubCpu)).median / (bytes / GiB)),
          baseline: round(stats(pairs.map((p) => p.baselineCpu)).median / (bytes / GiB)),
        }
      : undefined,
    runs: pairs.map((p) => ({
      vmhubSeconds: round(p.vmhubSeconds),
      baselineSeconds: round(p.baselineSeconds),
      ratio: round(p.ratio),
    })),
  };
}

/** How long the write-back before a run may take: a disk that takes longer is stuck, and the bench stops. */
const SETTLE_TIMEOUT_MS = 120_000;

/**
 * Returns once the kernel has written back every dirty page; called outside the clock, before each run.
 * A run that leaves its writes to the kernel (an unsynced download, Azurite's blobs, vcsim's items) would
 * otherwise charge their write-back to the run after it, and most to a run that fsyncs, as vmhub's agents do.
 */
export function settleDisk(): void {
  try {
    execFileSync('sync', { timeout: SETTLE_TIMEOUT_MS, stdio: 'ignore' });
  } catch (err) {
    throw new Error(`bench: could not settle the disk before a run (sync): ${(err as Error).message}`);
  }
}

/** Runs each pair REPEATS times, alternating which of the two goes first, each from a settled disk. */
export async function pairs(
  name: string,
  vmhub: () => Promise<{ seconds: number; cpu: number }>,
  baseline: () => Promise<{ seconds: number; cpu: number }>,
): Promise<Pair[]> {
  const out: Pair[] = [];
  for (let r = 0; r < REPEATS; r++) {
    const [first, second] = r % 2 === 0 ? [baseline, vmhub] : [vmhub, baseline];
    settleDisk();
    const a = await first();
    settleDisk();
    const b = await second();
    const [v, p] = r % 2 === 0 ? [b, a] : [a, b];
    out.push({
      vmhubSeconds: v.seconds,
      baselineSeconds: p.seconds,
      ratio: p.seconds / v.seconds,
      vmhubCpu: v.cpu,
      baselineCpu: p.cpu,
    });
    process.stderr.write(
      `bench: ${name} ${r + 1}/${REPEATS}: vmhub ${v.seconds.toFixed(2)} s, baseline ${p.seconds.toFixed(2)} s, ratio ${(p.seconds / v.seconds).toFixed(2)}\n`,
    );
  }
  return out;
}

/** The plain SDK's CPU: this process's, over the call (the bench does nothing else meanwhile). */
export async function baselineRun(fn: () => Promise<unknown>): Promise<{ seconds: number; cpu: number }> {
  const cpu = process.cpuUsage();
  const { seconds } = await timed(fn);
  const used = process.cpuUsage(cpu);
  return { seconds, cpu: (used.user + used.system) / 1e6 };
}

/** SHA-256 of a file, streamed. */
export async function fileSha256(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of fs.createReadStream(file, { highWaterMark: MiB })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * What a user scripts to fetch a blob to disk: downloadToFile (one streamed GET, it takes no concurrency),
 * then an fsync of the file, as vmhub's agents sync what they write before they call it done.
 */
export async function fsyncedDownload(blob: BlockBlobClient, file: string): Promise<void> {
  await blob.downloadToFile(file, 0, undefined, { maxRetryRequests: 3 });
  const handle = await fs.promises.open(file, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * What a user scripts to copy a blob between data centers: one streamed GET into uploadStream with the
 * bench's block size and concurrency. The copy is deleted after the clock stops.
 */
export async function streamedCopy(from: BlockBlobClient, to: ContainerClient): Promise<{ seconds: number; cpu: number }> {
  const copy = to.getBlockBlobClient(`baseline/${randomUUID()}.bin`);
  const run = await baselineRun(async () => {
    const body = (await from.download(0)).readableStreamBody!;
    await copy.uploadStream(body as never, BLOCK_MIB * MiB, CONCURRENCY);
  });
  await copy.delete();
  return run;
}

/** What a user scripts to publish: uploadFile with the bench's block size and concurrency. The blob is deleted after the clock stops. */
export async function plainUpload(to: ContainerClient, file: string): Promise<{ seconds: number; cpu: number }> {
  const blob = to.getBlockBlobClient(`baseline/${randomUUID()}.bin`);
  const run = await baselineRun(() => blob.uploadFile(file, { blockSize: BLOCK_MIB * MiB, concurrency: CONCURRENCY }));
  await blob.delete();
  return run;
}
