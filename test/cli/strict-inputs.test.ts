import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { NativeConnection, Worker } from '@temporalio/worker';
import { connectWorker } from '../../src/temporal/connection';
import { createAgentWorker } from '../../src/temporal/worker';
import { isoImage } from '../images/build';
import { repositoryRoot, startWorld, type TestWorld } from '../helpers';
import { ROOT, runVmhub, type Ran } from './run-vmhub';

/**
 * Strict inputs, as an operator meets them on the real services: the advice an error gives is accepted
 * when followed, dates are ISO 8601 and real, `all` is taken wherever SDDCs are listed, every command
 * checks the image names it is given, and a retention policy names an image that exists.
 */
describe('strict inputs and advice that works, through the vmhub CLI', () => {
  let world: TestWorld;
  let agent: { connection: NativeConnection; worker: Worker; running: Promise<void> };
  const id = randomUUID().slice(0, 6);
  const good = `strict-${id}`;
  const repo = repositoryRoot();
  // A second root the worker reads, which the CLI is only told about when an error advises it.
  const extra = path.join(repo, '..', `strict-extra-${id}`);
  const iso = `strict-${id}.iso`;
  let roots = repo;

  const vmhub = (...args: string[]): Promise<Ran> =>
    runVmhub(args, {
      ...process.env,
      VMHUB_TASK_QUEUE: world.config.taskQueue,
      MONGODB_URI: world.config.mongodbUri,
      VMHUB_REPOSITORY_ROOTS: roots,
      VMHUB_LOG_LEVEL: 'ERROR',
    });

  /** The one line a refused command prints, without its `vmhub: ` prefix; the exit code must be 1. */
  const refusal = async (...args: string[]): Promise<string> => {
    const r = await vmhub(...args);
    expect({ code: r.code, stdout: r.stdout }).toEqual({ code: 1, stdout: '' });
    expect(r.stderr.endsWith('\n') && r.stderr.indexOf('\n') === r.stderr.length - 1).toBe(true);
    return r.stderr.replace(/^vmhub: /, '').trimEnd();
  };

  const accepted = async (...args: string[]): Promise<Ran> => {
    const r = await vmhub(...args);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    return r;
  };

  const register = (name: string) =>
    world.deps.catalog.sddcs.add({
      name,
      dataCenter: 'dc-west',
      taskQueue: `sddc-${name}`,
      capacity: { cpus: 8, memoryMiB: 16384, diskGiB: 100 },
    });

  /** The text of the first `…` quoted in a message. */
  const quoted = (message: string): string => /`([^`]+)`/.exec(message)?.[1] ?? '';

  beforeAll(async () => {
    fs.mkdirSync(extra, { recursive: true });
    world = await startWorld({ repositoryRoots: [repo, extra] });
    await register(good);
    const connection = await connectWorker(world.config.temporal);
    const worker = await createAgentWorker(
      connection,
      { ...world.config, datastore: path.join(repo, '..', `strict-ds-${id}`, good) },
      good,
    );
    agent = { connection, worker, running: worker.run() };
    isoImage(path.join(repo, iso), { volumeId: 'STRICT' });
    isoImage(path.join(extra, `outside-${id}.iso`), { volumeId: 'OUTSIDE' });
  });

  afterAll(async () => {
    agent.worker.shutdown();
    await agent.running;
    await agent.connection.close();
    await world.close();
    fs.rmSync(path.join(repo, `linked-${id}.iso`), { force: true });
    fs.rmSync(extra, { recursive: true, force: true });
  });

  it('a file outside the roots, or a link to one: the error advises adding its folder as a root, which is then accepted', async () => {
    const outside = path.join(extra, `outside-${id}.iso`);
    const out = await refusal('publish', outside, '--image', `strict-out-${id}`, '--version', '1.0.0');
    expect(out).toMatch(
      /^InvalidSource: source \S+ is outside the repository roots \(\S+\); copy or move the file under one of them \(a link there to a file outside them is refused\), or add (\S+) to VMHUB_REPOSITORY_ROOTS \(colon-separated\) for both the CLI and the worker$/,
    );

    // The advice the issue found refused: a link under a root to that file. It is still refused, and
    // the error now says what is accepted instead.
    const link = `linked-${id}.iso`;
    fs.symlinkSync(outside, path.join(repo, link));
    const linked = await refusal('publish', link, '--image', `strict-link-${id}`, '--version', '1.0.0');
    const real = fs.realpathSync(outside);
    expect(linked).toBe(
      `InvalidSource: source ${link} links outside every repository root; copy the file itself under a root (a link may lead only to a file inside one)`,
    );

    // The folder the first error named, added to the roots: the file, and the link to it, are accepted.
    roots = [repo, /or add (\S+) to VMHUB/.exec(out)![1], path.dirname(real)].join(':');
    try {
      const direct = JSON.parse(
        (await accepted('publish', outside, '--image', `strict-out-${id}`, '--version', '1.0.0', '--json')).stdout,
      );
      expect(direct).toMatchObject({ image: `strict-out-${id}`, version: '1.0.0', format: 'iso' });
      const viaLink = JSON.parse(
        (await accepted('publish', link, '--image', `strict-link-${id}`, '--version', '1.0.0', '--json')).stdout,
      );
      expect(viaLink).toMatchObject({ image: `strict-link-${id}`, sha256: direct.sha256 });
    } finally {
      roots = repo;
    }
  });

  it('a wrong --sha256 fails ManifestMismatch, as the docs list it, and publishes nothing', async () => {
    const image = `strict-pin-${id}`;
    const pinned = '0'.repeat(64);
    const out = await refusal('publish', iso, '--image', image, '--version', '1.0.0', '--sha256', pinned);
    expect(out).toMatch(
      new RegExp(`^ManifestMismatch: the image hashes to SHA-256 [0-9a-f]{64}, not the ${pinned} it was pinned to$`),
    );
    expect(await world.deps.catalog.versions.get(image, '1.0.0')).toMatchObject({ status: 'failed' });
    const docs = fs.readFileSync(path.join(ROOT, 'docs', 'architecture.md'), 'utf8');
    expect(docs.split('\n').find((l) => l.startsWith('| `ManifestMismatch`'))).toMatch(/pinned to/);
  });

  it('an image that declares no version: the advice to give one is the option the CLI takes', async () => {
    const image = `strict-nover-${id}`;
    const out = await refusal('publish', iso, '--image', image);
    expect(out).toBe(
      'InvalidInput: no version given and the image declares none; give one (`vmhub publish ... --version 1.2.3`, or "version": "1.2.3" in the workflow input)',
    );
    expect(quoted(out)).toBe('vmhub publish ... --version 1.2.3');
    await accepted('publish', iso, '--image', image, '--version', '1.2.3');
  });

  it('a retention policy for an image that does not exist is refused, naming the close one, which is then accepted', async () => {
    const image = `strict-keep-${id}`;
    const now = new Date();
    await world.deps.catalog.versions.collection.insertOne({
      image,
      version: '1.0.0',
      status: 'available',
      format: 'iso',
      sizeBytes: 2 ** 20,
      location: { storage: 'east-primary', container: 'images', blob: `${image}/1.0.0/${image}-1.0.0.iso` },
      blockSize: 2 ** 20,
      blockCount: 1,
      createdAt: now,
      updatedAt: now,
    });
    const typo = `strict-kep-${id}`;
    const out = await refusal('retention', 'set', typo, '--keep', '3');
    expect(out).toBe(
      `UnknownImage: no version of ${typo} is in the catalog (did you mean ${image}?); a retention policy is for a published image: publish it first (\`vmhub images\` lists the images)`,
    );
    expect(await world.deps.catalog.retention.list()).toEqual([]);
    const set = JSON.parse((await accepted('retention', 'set', image, '--keep', '3', '--json')).stdout);
    expect(set.policies).toEqual([{ image, keep: 3 }]);
  });

  it('dates are ISO 8601 and real: 2026-02-30 is refused, the examples given are accepted', async () => {
    const image = `strict-eol-${id}`;
    await accepted('publish', iso, '--image', image, '--version', '1.0.0');
    const ref = `${image}@1.0.0`;
    const feb30 = await refusal('deprecate', ref, '--end-of-life', '2026-02-30');
    expect(feb30).toBe(
      'InvalidInput: --end-of-life "2026-02-30" is not a date: February 2026 has 28 days; give an ISO 8601 date or date and time, e.g. 2027-01-31, 2027-01-31T12:00:00Z or 2027-01-31T12:00:00+02:00',
    );
    expect((await world.deps.catalog.versions.get(image, '1.0.0'))?.deprecation).toBeUndefined();
    const offset = feb30.slice(feb30.lastIndexOf(' ') + 1);
    const r = JSON.parse((await accepted('deprecate', ref, '--end-of-life', offset, '--json')).stdout);
    expect(r).toMatchObject({ status: 'deprecated', endOfLife: '2027-01-31T10:00:00.000Z' });

    // Past its end of life, the deploy's refusal advises --force, which is then accepted.
    await accepted('deprecate', ref, '--end-of-life', '2020-02-29');
    const eol = await refusal('deploy', ref, '--to', good);
    expect(eol).toBe(
      `ImageRetired: ${ref} reached its end of life on 2020-02-29T00:00:00.000Z; deploy it anyway with --force ("force": true in a workflow input)`,
    );
    const forced = JSON.parse((await accepted('deploy', ref, '--to', good, '--force', '--json')).stdout);
    expect(forced.results).toEqual([expect.objectContaining({ sddc: good, status: 'deployed' })]);
  });

  it('"all" is taken wherever SDDCs are listed, and is no SDDC name', async () => {
    const published = JSON.parse(
      (await accepted('publish', iso, '--image', `strict-all-${id}`, '--version', '1.0.0', '--deploy', 'all', '--json')).stdout,
    );
    expect(published.deploy).toMatchObject({
      incomplete: false,
      results: [expect.objectContaining({ sddc: good, status: 'deployed' })],
    });
    const shown = JSON.parse((await accepted('sddc', 'show', 'all', '--json')).stdout) as Array<{ name: string }>;
    expect(shown.map((s) => s.name)).toEqual([good]);

    expect(await refusal('sddc', 'add', 'all', '--dc', 'dc-west')).toMatch(
      /^InvalidInput: SDDC name "all" is not an SDDC name: "all" stands for every registered SDDC/,
    );
    // Removing is one SDDC at a time; the example it gives is a command that removes one.
    expect(await refusal('sddc', 'remove', 'all')).toBe(
      'InvalidInput: "all" names every SDDC, and this command changes one at a time: name one, e.g. `vmhub sddc remove east-3` (`vmhub sddc list` shows them)',
    );
    expect((await world.deps.catalog.sddcs.list()).map((s) => s.name)).toEqual([good]);
  });

  it('an SDDC that is not registered: the command it advises registers it, and the next advice changes it', async () => {
    const name = `strict-new-${id}`;
    const unknown = await refusal('sddc', 'update', name, '--cpus', '4');
    expect(unknown).toMatch(
      new RegExp(
        `^UnknownSddc: SDDC ${name} is not registered \\(registered: ${good}\\); add it with \`vmhub sddc add ${name} --dc <data center>\`$`,
      ),
    );
    await accepted(...words(quoted(unknown).replace('<data center>', 'dc-west')).slice(1));
    const exists = await refusal('sddc', 'add', name, '--dc', 'dc-west');
    expect(quoted(exists)).toBe(`vmhub sddc update ${name}`);
    expect(
      JSON.parse((await accepted(...words(quoted(exists)).slice(1), '--cpus', '4', '--json')).stdout).capacity,
    ).toMatchObject({ cpus: 4 });
    // A name that is no SDDC name is refused as such, not advised to `sddc add`, which would refuse it.
    expect(await refusal('sddc', 'update', 'Strict-New', '--cpus', '4')).toMatch(
      /^InvalidInput: SDDC "Strict-New" is not an SDDC name \(try strict-new\)/,
    );
    await accepted('sddc', 'remove', name);

    const latest = await refusal('show', `strict-none-${id}@latest`);
    expect(quoted(latest)).toBe(`vmhub images --image strict-none-${id}`);
    expect((await accepted(...words(quoted(latest)).slice(1))).stdout).toBe('no versions\n');
  });

  it('a retire held up by an SDDC without an agent: the advised `sddc remove` lets it finish', async () => {
    const image = `strict-retire-${id}`;
    await accepted('publish', iso, '--image', image, '--version', '1.0.0');
    const gone = `strict-gone-${id}`;
    await register(gone);
    await world.deps.catalog.deployments.record({
      image,
      version: '1.0.0',
      sddc: gone,
      status: 'deployed',
      source: 'west-replica',
      path: '/gone',
    });
    const out = await refusal('retire', `${image}@1.0.0`);
    expect(out).toMatch(
      new RegExp(
        `^NoAgent: no agent has polled for ${gone} .*; start \`npm run agent -- ${gone}\` and retire again \\(or, for an SDDC gone for good, \`vmhub sddc remove <sddc>\`\\)$`,
      ),
    );
    const advice = /`(vmhub sddc remove <sddc>)`/.exec(out)![1].replace('<sddc>', gone);
    await accepted(...words(advice).slice(1));
    const retired = JSON.parse((await accepted('retire', `${image}@1.0.0`, '--yes', '--json')).stdout);
    expect(retired).toMatchObject({ status: 'retired', sddcs: [] });
  });
});

function words(command: string): string[] {
  return command.split(/\s+/).filter(Boolean);
}
