const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { TestEnvironment } = require('jest-environment-node');

/**
 * Test files that use the same names on the shared test services, so that two of them running at
 * the same time would overwrite each other's blobs or source files, or that load the one dev server
 * so heavily that two at once starve each other: at most one file of a group runs at a time. Other
 * files use names of their own (or a catalog database of their own) and run side by side.
 * jest.sequencer.js orders the files so that those of a group seldom wait for each other.
 */
const EXCLUSIVE = {
  // Both publish edge@1.0.0 (and more versions) from edge-<version>.ova in the repository.
  edge: [/[\\/]test[\\/]deploy\.test\.ts$/, /[\\/]test[\\/]content-library\.test\.ts$/],
  // Each drives a thousand SDDCs' activities through the one dev server: two at once starve each other.
  fleet: [/[\\/]test[\\/]fleet-history\.test\.ts$/, /[\\/]test[\\/]retire-fleet\.test\.ts$/],
};

/** The EXCLUSIVE groups a test file belongs to. */
function exclusiveGroupsOf(testPath) {
  return Object.keys(EXCLUSIVE).filter((name) => EXCLUSIVE[name].some((f) => f.test(testPath)));
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Takes the lock (a folder holding its owner's pid), waiting while a live process holds it. */
async function lock(dir) {
  fs.mkdirSync(path.dirname(dir), { recursive: true });
  for (;;) {
    try {
      fs.mkdirSync(dir);
      fs.writeFileSync(path.join(dir, 'pid'), String(process.pid));
      return;
    } catch (err) {
      if (err.code !== 'EEXIST') throw err;
    }
    let owner = NaN;
    try {
      owner = Number(fs.readFileSync(path.join(dir, 'pid'), 'utf8'));
    } catch {
      // just created: its owner writes the pid next
    }
    // Left by a jest worker that died while it held the lock.
    if (Number.isInteger(owner) && owner > 0 && !alive(owner)) fs.rmSync(dir, { recursive: true, force: true });
    else await sleep(250);
  }
}

/** Jest's node environment; a file of an EXCLUSIVE group holds the group's lock from setup to teardown. */
class ServicesEnvironment extends TestEnvironment {
  constructor(config, context) {
    super(config, context);
    const root = path.join(process.env.VMHUB_TEST_DATA_DIR ?? os.tmpdir(), 'jest-locks');
    this.locks = exclusiveGroupsOf(context.testPath)
      .sort()
      .map((name) => path.join(root, name));
  }

  async setup() {
    for (const dir of this.locks) await lock(dir);
    await super.setup();
  }

  async teardown() {
    try {
      await super.teardown();
    } finally {
      for (const dir of this.locks) fs.rmSync(dir, { recursive: true, force: true });
    }
  }
}

module.exports = ServicesEnvironment;
module.exports.exclusiveGroupsOf = exclusiveGroupsOf;
