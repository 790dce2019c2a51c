import { plural } from '../../src/shared/units';
import type { IncrementalFigure } from './incremental';
import { MiB, type PairFigure } from './measure';
import type { TelemetryFigure } from './telemetry';

/** What `npm run bench` measured, what it checks against the targets, and the table it prints. */
export interface Figures {
  publish: PairFigure & { sourceReadsPerByte: number };
  /** The publish on a worker serving metrics (scraped) and sending traces, against one doing neither. */
  telemetry: TelemetryFigure;
  /** The next version (1 % of blocks changed) published over the first, against uploadFile of all of it. */
  incrementalPublish: IncrementalFigure;
  deploy: PairFigure;
  deployThree: PairFigure;
  deltaDeploy: DeltaDeployFigure;
  /** An OVA deployed into a vcsim's content library, against downloadToFile + govc library.import. */
  contentLibrary: PairFigure;
  replication: PairFigure;
  /** The next version replicated to a location holding the first, against a streamed copy of all of it. */
  incrementalReplication: IncrementalFigure;
  /** VerifyReplicas' read and hash of one replica, against a streamed read hashed in the bench process. */
  verifyRead: PairFigure;
  memory: { idleMiB: { small: number; large: number }; peakMiB: { small: number; large: number }; largeOverSmall: number };
  resume: {
    sentAtKillMiB: number;
    bytesResentMiB: number;
    inFlightBoundMiB: number;
    seconds: number;
    extraSeconds: number;
    heartbeatTimeoutSeconds: number;
  };
  history: { small: number; simulatedTiB: number; simulatedBlocks: number };
}

/** Medians of alternating runs: the next version to an SDDC holding the first, and to one holding neither. */
export interface DeltaDeployFigure {
  blocks: number;
  changedBlocks: number;
  /** Each run's delta seconds over its full seconds. */
  ratio: { median: number; min: number; max: number };
  delta: { fetchedMiB: number; reusedMiB: number; seconds: number };
  full: { fetchedMiB: number; seconds: number };
  runs: Array<{
    delta: { fetchedMiB: number; reusedMiB: number; seconds: number };
    full: { fetchedMiB: number; reusedMiB: number; seconds: number };
    ratio: number;
  }>;
}

/** Bytes a version moved, and their share of the image; "n/a" where the run did not report them. */
function moved(f: IncrementalFigure): { text: string; share: number | undefined } {
  if (f.bytes === null) return { text: 'n/a', share: undefined };
  const share = f.bytes / f.sizeBytes;
  return { text: `${(f.bytes / MiB).toFixed(1)} MiB (${(100 * share).toFixed(1)} %)`, share };
}

/** The issue's target table, each row with this run's value; then the earlier targets that still hold. */
export function targets(f: Figures): Array<{ target: string; value: string; met: boolean }> {
  /** A ratio's row: its median against the least the target takes. */
  const atLeast = (
    target: string,
    name: 'publish' | 'deploy' | 'deployThree' | 'replication' | 'contentLibrary',
    bound: number,
  ) => {
    const median = f[name].ratio.median;
    return { target, value: median.toFixed(2), met: median >= bound };
  };
  const incremental = (fig: IncrementalFigure, bytes: string) => {
    const m = moved(fig);
    return {
      value: `${fig.ratio.median.toFixed(2)} × faster; ${m.text} ${bytes}`,
      met: fig.ratio.median >= 4 && m.share !== undefined && m.share <= 0.05,
    };
  };
  const delta = f.deltaDeploy.ratio.median;
  const { small, large } = f.memory.peakMiB;
  return [
    {
      target: 'incremental publish, 1 % changed: ≥ 4 × faster than uploadFile of the whole; ≤ 5 % of the bytes sent',
      ...incremental(f.incrementalPublish, 'sent'),
    },
    {
      target: 'incremental replication, 1 % changed: ≤ 5 % of the bytes crossed; ≥ 4 × faster than a streamed copy',
      ...incremental(f.incrementalReplication, 'crossed'),
    },
    atLeast('full replication ≥ 1.0 × a streamed copy', 'replication', 1),
    atLeast('content-library deploy ≥ 1.5 × downloadToFile + govc library.import', 'contentLibrary', 1.5),
    atLeast('deploy to one SDDC ≥ 1.0 × an fsynced downloadToFile', 'deploy', 1),
    atLeast('three-SDDC deploy ≥ 1.0 × three fsynced downloadToFile', 'deployThree', 1),
    atLeast('publish ≥ 0.9 × uploadFile', 'publish', 0.9),
    {
      target: `delta deploy (${f.deltaDeploy.changedBlocks} of ${plural(f.deltaDeploy.blocks, 'block')} changed) time ≤ 0.3 × a full deploy`,
      value: `${delta.toFixed(2)} (${f.deltaDeploy.ratio.min.toFixed(2)}–${f.deltaDeploy.ratio.max.toFixed(2)})`,
      met: delta <= 0.3,
    },
    {
      target: 'worker peak RSS ≤ 300 MiB, 1× and 4× publish',
      value: `${small} / ${large} MiB`,
      met: small <= 300 && large <= 300,
    },
    {
      target: 'peak RSS at 4× within 10 % of 1×',
      value: `${f.memory.largeOverSmall.toFixed(2)}×`,
      met: f.memory.largeOverSmall <= 1.1,
    },
    {
      target: '≤ 2,000 history events, 1 TiB publish',
      value: String(f.history.simulatedTiB),
      met: f.history.simulatedTiB <= 2000,
    },
    {
      target: 'a crash re-sends at most the blocks in flight',
      value: `${f.resume.bytesResentMiB} MiB re-sent (≤ ${f.resume.inFlightBoundMiB} MiB in flight)`,
      met: f.resume.bytesResentMiB <= f.resume.inFlightBoundMiB,
    },
    {
      target: 'delta deploy, 1 % of blocks changed, fetches ≤ 5 % of the bytes',
      value: `${((100 * f.deltaDeploy.delta.fetchedMiB) / f.deltaDeploy.full.fetchedMiB).toFixed(1)} %`,
      met: f.deltaDeploy.delta.fetchedMiB <= 0.05 * f.deltaDeploy.full.fetchedMiB,
    },
  ];
}

export interface Results {
  startedAt: string;
  seconds: number;
  command: string;
  machine: {
    cpus: number;
    cpuModel?: string;
    memoryGiB: number;
    os: string;
    /** Other work on the machine makes every figure noisier: the 1, 5 and 15 minute load averages. */
    loadAverageBefore: number[];
    loadAverageAfter: number[];
  };
  versions: Record<string, string>;
  settings: {
    imageGiB: number;
    blockMiB: number;
    rangeFanOut: number;
    transferConcurrency: number;
    /** Uploads (uploadFile, the replication copy's uploadStream); downloadToFile takes none. */
    baselineConcurrency: number;
    deployBaseline: string;
    libraryBaseline: string;
    agentConcurrency: number;
    maxInflightMiB: number;
    repeats: number;
    worker: string;
  };
  figures: Figures;
  targets: ReturnType<typeof targets>;
}

export function markdown(r: Results): string {
  const f = r.figures;
  const size = `${r.settings.imageGiB} GiB`;
  type PairName = 'publish' | 'incrementalPublish' | 'deploy' | 'deployThree' | 'contentLibrary' | 'replication';
  const pair = (name: PairName | 'incrementalReplication' | 'verifyRead' | 'telemetry', what: string, baseline: string) => {
    const p = f[name];
    const cpu = p.cpuSecondsPerGiB ? ` (${p.cpuSecondsPerGiB.vmhub} / ${p.cpuSecondsPerGiB.baseline} CPU s/GiB)` : '';
    return `| ${what} | ${p.vmhubMiBps} MiB/s | ${baseline} ${p.baselineMiBps} MiB/s${cpu} | **${p.ratio.median.toFixed(2)}** (${p.ratio.min.toFixed(2)}–${p.ratio.max.toFixed(2)}) |`;
  };
  const lines = [
    `\`${r.command}\` — ${r.machine.cpus} × ${r.machine.cpuModel}, ${r.machine.memoryGiB} GiB, load ${r.machine.loadAverageBefore[0]} before / ${r.machine.loadAverageAfter[0]} after; node ${r.versions.node.slice(1)}, @azure/storage-blob ${r.versions['@azure/storage-blob']}, @temporalio/worker ${r.versions['@temporalio/worker']}, Azurite ${r.versions.azurite}`,
    '',
    '| figure | vmhub | what a user runs (CPU vmhub / it) | ratio median (min–max) |',
    '|---|---|---|---|',
    pair('publish', `publish ${size}`, 'uploadFile'),
    pair('incrementalPublish', `publish the next version of ${size}, 1 % of blocks changed`, 'uploadFile of all of it'),
    pair('deploy', `deploy ${size} to one SDDC`, 'downloadToFile + fsync'),
    pair('deployThree', `deploy ${size} to three SDDCs at once`, '3 × (downloadToFile + fsync)'),
    pair('contentLibrary', `deploy a ${size} OVA to a content library (vcsim)`, 'downloadToFile + govc library.import'),
    pair('replication', `replicate ${size} east → west`, 'streamed copy'),
    pair(
      'incrementalReplication',
      'replicate that next version east → west, west holding the first',
      'streamed copy of all of it',
    ),
    pair('verifyRead', `verify (hash) a ${size} replica`, 'streamed read + SHA-256'),
    pair('telemetry', `publish ${size}, metrics served and scraped, traces sent`, 'the same publish, both off'),
    '',
    '| figure | value |',
    '|---|---|',
    `| source bytes read per image byte (publish) | ${f.publish.sourceReadsPerByte} |`,
    `| metrics scrapes / OTLP trace requests (bytes) during the telemetry runs | ${f.telemetry.scrapes} / ${f.telemetry.spanRequests} (${f.telemetry.spanBytes}) |`,
    `| bytes sent, next version's publish${f.incrementalPublish.from ? ` (from ${f.incrementalPublish.from})` : ''} | ${moved(f.incrementalPublish).text} |`,
    `| bytes crossed, next version's replication | ${moved(f.incrementalReplication).text} |`,
    `| worker RSS idle / peak, ${size} publish | ${f.memory.idleMiB.small} / ${f.memory.peakMiB.small} MiB |`,
    `| worker RSS idle / peak, 4 × ${size} publish | ${f.memory.idleMiB.large} / ${f.memory.peakMiB.large} MiB |`,
    `| history events: ${size} publish / simulated 1 TiB (${plural(f.history.simulatedBlocks, 'block')}) | ${f.history.small} / ${f.history.simulatedTiB} |`,
    `| delta deploy ${size}, ${f.deltaDeploy.changedBlocks} of ${plural(f.deltaDeploy.blocks, 'block')} changed: fetched / time, against a full deploy | ${f.deltaDeploy.delta.fetchedMiB} MiB in ${f.deltaDeploy.delta.seconds} s / ${f.deltaDeploy.full.fetchedMiB} MiB in ${f.deltaDeploy.full.seconds} s |`,
    `| worker SIGKILLed at ${f.resume.sentAtKillMiB} MiB staged: re-sent / extra seconds | ${f.resume.bytesResentMiB} MiB / ${f.resume.extraSeconds} s (heartbeat timeout ${f.resume.heartbeatTimeoutSeconds} s) |`,
    '',
    '| target | value | |',
    '|---|---|---|',
    ...r.targets.map((t) => `| ${t.target} | ${t.value} | ${t.met ? 'met' : '**missed**'} |`),
    '',
  ];
  return lines.join('\n');
}
