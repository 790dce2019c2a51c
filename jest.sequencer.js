const Sequencer = require('@jest/test-sequencer').default;
const { exclusiveGroupsOf } = require('./jest.environment');

/**
 * Jest's own order (failed first, then slowest first), except that files named `zz-*.test.ts` run
 * last: they check what the other test files left behind on the shared test services.
 *
 * Files of one exclusive group (jest.environment.js) take turns, so a worker that starts one while
 * another of its group runs only waits. The order is therefore laid out as the workers would run it,
 * with the last run's durations (file sizes on a first run): a file whose group is busy when its turn
 * comes goes after the next file that can run then.
 */
class LastChecksSequencer extends Sequencer {
  constructor(options) {
    super(options);
    this.workers = Math.max(1, options?.globalConfig?.maxWorkers ?? 1);
  }

  async sort(tests) {
    const sorted = await super.sort(tests);
    const isLast = (test) => /(^|[\\/])zz-[^\\/]*\.test\.ts$/.test(test.path);
    return [...this.apart(sorted.filter((t) => !isLast(t))), ...sorted.filter(isLast)];
  }

  apart(tests) {
    if (this.workers < 2) return tests;
    const estimate = (test) => test.duration ?? test.context.hasteFS.getSize(test.path) ?? 0;
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
