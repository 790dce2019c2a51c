import fs from 'node:fs';
import {
  agentKill,
  azuriteOutageDuringDeploy,
  azuriteOutageDuringPublish,
  badImage,
  catalogOutageDuringMarkAvailable,
  currentServices,
  deployCancel,
  openWorld,
  outcomeTable,
  publishCancel,
  runScenarios,
  startServiceSet,
  temporalRestartDuringPublish,
  versionRace,
  workerKill,
  writeOutcomes,
  type FaultOutcome,
  type FaultWorld,
  type Scenario,
  type ServiceSet,
} from '../harness/faults';

/**
 * Issue 9, "every run ends", short form: each fault at least once, on the real services. Scenarios that
 * only kill processes or cancel share the suite's services, several at once; those that stop Azurite,
 * the catalog or Temporal run one at a time on services of their own. A kill during markAvailable waits
 * out that activity's start-to-close timeout, the longest wait here, so it starts first. VMHUB_FAULTS
 * (a regular expression) runs only the scenarios it matches. Outcomes: test-output/faults.json.
 */
const SHORT_FORM: Scenario[] = [
  workerKill('mark-available'),
  workerKill('commit'),
  workerKill('staging'),
  workerKill('all-blocks-staged'),
  workerKill('replicating'),
  agentKill('early'),
  agentKill('mid'),
  agentKill('verify'),
  versionRace(),
  badImage('corrupt-tar'),
  badImage('manifest-mismatch'),
  publishCancel('probing'),
  publishCancel('staging'),
  publishCancel('committing'),
  publishCancel('replicating'),
  deployCancel(),
  azuriteOutageDuringPublish(),
  azuriteOutageDuringDeploy(),
  catalogOutageDuringMarkAvailable(),
  temporalRestartDuringPublish(),
].filter((s) => new RegExp(process.env.VMHUB_FAULTS ?? '.').test(s.name));

const SEED = 9;

describe('every run ends: faults on the real services', () => {
  let own: ServiceSet | undefined;
  const worlds: FaultWorld[] = [];
  let outcomes: Array<Promise<FaultOutcome>> = [];
  const started = Date.now();

  beforeAll(async () => {
    fs.rmSync('test-output/faults', { recursive: true, force: true });
    own = await startServiceSet('faults');
    worlds.push(await openWorld(currentServices()), await openWorld(own));
    outcomes = runScenarios(
      SHORT_FORM,
      { shared: worlds[0], exclusive: worlds[1] },
      {
        concurrency: Number(process.env.VMHUB_FAULTS_CONCURRENCY ?? 4),
        seed: SEED,
        logRoot: 'test-output/faults',
        onOutcome: (o) =>
          process.stderr.write(
            `fault ${o.scenario}: ${o.outcome} in ${o.secondsToEnd}s ${o.passed ? 'pass' : `FAIL ${o.error}`}\n`,
          ),
      },
    );
  }, 180_000);

  afterAll(async () => {
    const all = await Promise.all(outcomes);
    if (all.length > 0) {
      writeOutcomes(
        'test-output/faults.json',
        { form: 'short', seed: SEED, seconds: Math.round((Date.now() - started) / 1000) },
        all,
      );
      process.stderr.write(`\n${outcomeTable(all)}\n`);
    }
    for (const w of worlds) await w.close();
    await own?.close();
  }, 20 * 60_000);

  it.each(SHORT_FORM.map((s, i) => [s.name, i] as const))(
    '%s',
    async (_name, i) => {
      const outcome = await outcomes[i];
      expect(outcome.error).toBeUndefined();
      expect(outcome.passed).toBe(true);
    },
    20 * 60_000,
  );
});
