import fs from 'node:fs';
import path from 'node:path';
import { buildBundle } from './build-bundle';
import {
  agentKill,
  azuriteOutageDuringDeploy,
  azuriteOutageDuringPublish,
  badImage,
  catalogOutageDuringMarkAvailable,
  deployCancel,
  openWorld,
  outcomeTable,
  publishCancel,
  runScenarios,
  startServiceSet,
  stopActiveScenarios,
  temporalRestartDuringPublish,
  versionRace,
  workerKill,
  writeOutcomes,
  type FaultWorld,
  type Scenario,
  type ServiceSet,
} from '../test/harness/faults';

/**
 * The long form of issue 9's fault suite: `npm run soak [-- --seed S] [--faults N] [--concurrency C]`
 * (or VMHUB_SOAK_SEED, VMHUB_SOAK_FAULTS, VMHUB_SOAK_CONCURRENCY). It starts services of its own, draws
 * N faults (20 by default) and their kill points from the seed, runs them, checks the invariants after
 * each, prints a table and writes test-output/soak.json. The same seed draws the same faults.
 */
function option(name: string, env: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : process.env[env];
}

/** mulberry32: a small seeded generator, so a seed names a soak. */
function generator(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function drawFaults(seed: number, count: number): Scenario[] {
  const random = generator(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)];
  const fraction = () => Math.round((0.1 + random() * 0.8) * 100) / 100;
  const seconds = (low: number, high: number) => Math.round(low + random() * (high - low)) * 1000;
  // Weighted by how many distinct kill points each has.
  const kinds: Array<[number, () => Scenario]> = [
    [
      5,
      () =>
        workerKill(pick(['staging', 'all-blocks-staged', 'commit', 'mark-available', 'replicating'] as const), {
          fraction: fraction(),
          deliver: random() < 0.5,
        }),
    ],
    [3, () => agentKill(pick(['early', 'mid', 'verify'] as const), { fraction: fraction() })],
    [1, () => azuriteOutageDuringPublish(seconds(5, 20), fraction())],
    [1, () => azuriteOutageDuringDeploy(seconds(5, 20), fraction())],
    [1, () => catalogOutageDuringMarkAvailable(seconds(5, 20))],
    [1, () => temporalRestartDuringPublish(seconds(1, 15), fraction())],
    [1, () => versionRace()],
    [1, () => badImage(pick(['corrupt-tar', 'manifest-mismatch'] as const))],
    [3, () => publishCancel(pick(['probing', 'staging', 'committing', 'replicating'] as const), { fraction: fraction() })],
    // Late enough that the agent is downloading, early enough that reads are still to come when the cancel lands.
    [1, () => deployCancel(Math.round((0.1 + random() * 0.35) * 100) / 100)],
  ];
  const total = kinds.reduce((n, [w]) => n + w, 0);
  return Array.from({ length: count }, () => {
    let x = random() * total;
    for (const [weight, make] of kinds) {
      if ((x -= weight) < 0) return make();
    }
    return kinds[kinds.length - 1][1]();
  });
}

async function main(): Promise<number> {
  const seed = Number(option('seed', 'VMHUB_SOAK_SEED') ?? Math.floor(Math.random() * 2 ** 31));
  const count = Number(option('faults', 'VMHUB_SOAK_FAULTS') ?? 20);
  const concurrency = Number(option('concurrency', 'VMHUB_SOAK_CONCURRENCY') ?? 3);
  if (![seed, count, concurrency].every(Number.isSafeInteger) || count < 1 || concurrency < 1) {
    throw new Error('--seed, --faults and --concurrency take whole numbers (faults and concurrency at least 1)');
  }
  const command = `npm run soak -- --seed ${seed} --faults ${count} --concurrency ${concurrency}`;
  process.stderr.write(`soak: seed ${seed}, ${count} faults, ${concurrency} at a time; again with: ${command}\n`);
  const scenarios = drawFaults(seed, count);

  const sets: ServiceSet[] = [];
  const worlds: FaultWorld[] = [];
  const shutdown = async () => {
    await stopActiveScenarios();
    for (const w of worlds) await w.close().catch(() => undefined);
    for (const s of sets) await s.close().catch(() => undefined);
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => void shutdown().finally(() => process.exit(130)));
  }
  try {
    sets.push(await startServiceSet('soak'), await startServiceSet('soak-outages'));
    const bundle = path.join(sets[0].config.dataDir, 'workflow-bundle.js');
    await buildBundle(bundle);
    for (const s of sets) s.env.VMHUB_WORKFLOW_BUNDLE = bundle;
    worlds.push(await openWorld(sets[0]), await openWorld(sets[1]));

    fs.rmSync('test-output/soak', { recursive: true, force: true });
    const started = Date.now();
    const outcomes = await Promise.all(
      runScenarios(
        scenarios,
        { shared: worlds[0], exclusive: worlds[1] },
        {
          concurrency,
          seed,
          logRoot: 'test-output/soak',
          onOutcome: (o) =>
            process.stderr.write(
              `soak ${o.scenario}: ${o.outcome} in ${o.secondsToEnd}s ${o.passed ? 'pass' : `FAIL ${o.error}`}\n`,
            ),
        },
      ),
    );
    const seconds = Math.round((Date.now() - started) / 1000);
    writeOutcomes('test-output/soak.json', { form: 'soak', seed, command, concurrency, seconds }, outcomes);
    const failed = outcomes.filter((o) => !o.passed).length;
    process.stdout.write(`${outcomeTable(outcomes)}\n`);
    process.stdout.write(
      `soak seed ${seed}: ${outcomes.length - failed} of ${outcomes.length} faults passed in ${seconds}s (test-output/soak.json)\n`,
    );
    return failed === 0 ? 0 : 1;
  } finally {
    await shutdown();
  }
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    process.stderr.write(`soak: ${err.stack ?? err.message}\n`);
    process.exit(1);
  },
);
