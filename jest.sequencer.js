const Sequencer = require('@jest/test-sequencer').default;

/**
 * Jest's own order (failed first, then slowest first), except that files named `zz-*.test.ts` run
 * last: they check what the other test files left behind on the shared test services.
 */
class LastChecksSequencer extends Sequencer {
  async sort(tests) {
    const sorted = await super.sort(tests);
    const isLast = (test) => /(^|[\\/])zz-[^\\/]*\.test\.ts$/.test(test.path);
    return [...sorted.filter((t) => !isLast(t)), ...sorted.filter(isLast)];
  }
}

module.exports = LastChecksSequencer;
