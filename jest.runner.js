const TestRunner = require('jest-runner').default;

/**
 * Jest's own runner, in two phases: first the test files that can share the test services run in
 * parallel (up to --maxWorkers at once), then the files its `serial` option matches run one at a
 * time in the main process, in the sequencer's order. The serial ones are those that must not share
 * the services with another file while they run: `zz-*.test.ts` checks what every other file left
 * behind, so it runs after all of them. With --runInBand every file runs in band, as before.
 */
class PhasedRunner extends TestRunner {
  constructor(globalConfig, context, options = {}) {
    super(globalConfig, context);
    this.serialPatterns = (options.serial ?? []).map((p) => new RegExp(p));
  }

  async runTests(tests, watcher, options) {
    const serial = (test) => this.serialPatterns.some((p) => p.test(test.path.split('\\').join('/')));
    const parallel = tests.filter((t) => !serial(t));
    const last = tests.filter(serial);
    if (parallel.length > 0) await super.runTests(parallel, watcher, options);
    if (last.length > 0 && !watcher.isInterrupted()) await super.runTests(last, watcher, { ...options, serial: true });
  }
}

module.exports = PhasedRunner;
