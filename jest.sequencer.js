const Sequencer = require('@jest/test-sequencer').default;
const path = require('node:path');
const { exclusiveGroupsOf } = require('./jest.environment');

/**
 * The files that take longest, as measured from a fresh clone on a 2-core machine, three files at a time.
 * A fresh clone has no last run: without these a long file whose source is short would start last.
 */
const EXPECTED_MS = {
  'faults.test.ts': 200_000,
  'deploy.test.ts': 185_000,
  'delta-deploy.test.ts': 135_000,
  'content-library.test.ts': 125_000,
  'fleet-workers.test.ts': 100_000,
  'fleet-history.test.ts': 100_000,
  'cli.test.ts': 95_000,
  'worker-upgrade.test.ts': 70_000,
  'cancel.test.ts': 50_000,
  'strict-inputs.test.ts': 45_000,
  'retire-fleet.test.ts': 45_000,
  'publish-resume.test.ts': 45_000,
  'publish-reset.test.ts': 45_000,
  'lifecycle.test.ts': 40_000,
  'agent-downloads.test.ts': 35_000,
  'operator.test.ts': 35_000,
  'run-ids.test.ts': 35_000,
  'publish-history.test.ts': 25_000,
  'publish.test.ts': 25_000,
  'previews.test.ts': 20_000,
};

/** How long a file should take: its last run, else the expected time above (a fresh clone has no last run), else its size. */
const estimate = (test) => test.duration ?? EXPECTED_MS[path.basename(test.path)] ?? test.context.hasteFS.getSize(test.path) ?? 0;

/**
 * Slowest first, except that files named `zz-*.test.ts` run
 * last: they check what the other test files left behind on the shared test services.
 *
 * Files of one exclusive group (jest.environment.js) take turns, so a worker that starts one while
 * another of its group runs only waits. The order is therefore laid out as the workers would run it,
 * with the estimated durations: a file whose group is busy when its turn
 * comes goes after the next file that can run then.
 */
class LastChecksSequencer extends Sequencer {
  constructor(options) {
    super(options);
    this.workers = Math.max(1, options?.globalConfig?.maxWorkers ?? 1);
  }

  async sort(tests) {
    // Longest first, so that the longest file never starts late.
    const sorted = [...(await super.sort(tests))].sort((a, b) => estimate(b) - estimate(a));
    const isLast = (test) => /(^|[\\/])zz-[^\\/]*\.test\.ts$/.test(test.path);
    return [...this.apart(sorted.filter((t) => !isLast(t))), ...sorted.filter(isLast)];
  }

  apart(tests) {
    if (this.workers < 2) return tests;
    const pending = [...tests];
    const order = [];
    const running = []; // { end, groups }
    let now = 0;
    while (pending.length > 0) {
      if (running.length === this.workers) {
        running.sort((a, b) => a.end - b.end);
        now = running.shift().end;
      }
      const busy = new Set(running.flatMap((r) => r.groups));
      let i = pending.findIndex((t) => !exclusiveGroupsOf(t.path).some((g) => busy.has(g)));
      if (i < 0) i = 0; // every pending file waits for a group: the first waits least
      const [test] = pending.splice(i, 1);
      order.push(test);
      running.push({ end: now + estimate(test), groups: exclusiveGroupsOf(test.path) });
    }
    return order;
  }
}

module.exports = LastChecksSequencer;
