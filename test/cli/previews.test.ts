import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { NativeConnection, Worker } from '@temporalio/worker';
import type { DeployResult } from '../../src/shared/deploy-input';
import type { PublishResult } from '../../src/shared/publish-input';
import { unlessNotFound } from '../../src/storage/block-store';
import { connectWorker } from '../../src/temporal/connection';
import { createAgentWorker } from '../../src/temporal/worker';
import { isoImage } from '../images/build';
import { until } from '../harness/worker-process';
import { repositoryRoot, startWorld, type TestWorld } from '../helpers';
import { ROOT, runVmhub, VMHUB, type Ran } from './run-vmhub';

const MiB = 2 ** 20;

/** The previews of the lifecycle and of a deploy (`--dry-run`), retire's confirmation and `retention apply`, as an operator runs them. */
describe('previews and confirmations against the services', () => {
  let world: TestWorld;
  let env: NodeJS.ProcessEnv;
  let agent: { connection: NativeConnection; worker: Worker; running: Promise<void> };
  const id = randomUUID().slice(0, 6);
  const good = `pv-good-${id}`;
  const idle = `pv-idle-${id}`;
  const lib = `pv-lib-${id}`;
  const datastore = path.join(repositoryRoot(), '..', `pv-ds-${id}`);
  const images = { deploy: `pv-deploy-${id}`, gone: `pv-gone-${id}`, retire: `pv-retire-${id}`, kept: `pv-kept-${id}` };
  const published: Record<string, PublishResult> = {};
  let firstDeploy: string;

  const vmhub = (...args: string[]): Promise<Ran> => runVmhub(args, env);
  const json = async (...args: string[]) => {
    const ran = await vmhub(...args, '--json');
    expect({ args, code: ran.code, stderr: ran.stderr }).toEqual({ args, code: 0, stderr: '' });
    return JSON.parse(ran.stdout);
  };

  async function publish(image: string, version: string, extraBytes = MiB): Promise<PublishResult> {
    const file = `${image}-${version}.iso`;
    isoImage(path.join(repositoryRoot(), file), { volumeId: `V${version.replace(/\./g, '')}`, extraBytes });
    return (await world.client.workflow.execute('PublishImage', {
      args: [{ source: file, image, version }],
      taskQueue: world.config.taskQueue,
      workflowId: `publish:${image}:${version}`,
    })) as PublishResult;
  }
  /** A deploy started directly, as set-up: the CLI's own deploys are what the tests look at. */
  async function deploy(image: string, version: string): Promise<string> {
    const workflowId = `deploy:${image}:${version}:${randomUUID().slice(0, 8)}`;
    const result = (await world.client.workflow.execute('DeployToSDDCs', {
      args: [{ image, version, sddcs: [good] }],
      taskQueue: world.config.taskQueue,
      workflowId,
    })) as DeployResult;
    expect(result.results).toEqual([expect.objectContaining({ sddc: good, status: 'deployed' })]);
    return workflowId;
  }
  const blobExists = async (location: string, p: PublishResult) =>
    (await unlessNotFound(world.deps.storage.store(location).getProperties(p.location.blob))) !== undefined;
  const statusOf = async (image: string, version: string) => (await world.deps.catalog.versions.get(image, version))?.status;
  const workflowIds = async (query: string): Promise<string[]> => {
    const ids: string[] = [];
    for await (const w of world.client.workflow.list({ query })) ids.push(w.workflowId);
    return ids;
  };

  beforeAll(async () => {
    world = await startWorld({ blockSizeBytes: 4 * MiB });
    env = {
      ...process.env,
      VMHUB_TASK_QUEUE: world.config.taskQueue,
      MONGODB_URI: world.config.mongodbUri,
      VMHUB_LOG_LEVEL: 'ERROR',
    };
    const capacity = { cpus: 8, memoryMiB: 16384, diskGiB: 100 };
    await world.deps.catalog.sddcs.add({ name: good, dataCenter: 'dc-west', taskQueue: `sddc-${good}`, capacity });
    await world.deps.catalog.sddcs.add({ name: idle, dataCenter: 'dc-west', taskQueue: `sddc-${idle}`, capacity });
    const connection = await connectWorker(world.config.temporal);
    const worker = await createAgentWorker(connection, { ...world.config, datastore: path.join(datastore, good) }, good);
    agent = { connection, worker, running: worker.run() };
    // Every image at once; the versions of one image one after another, so each notes its overlap with the one before.
    const inOrder = async (image: string, versions: string[], extraBytes?: number) => {
      for (const v of versions) published[`${image}@${v}`] = await publish(image, v, extraBytes);
    };
    await Promise.all([
      inOrder(images.deploy, ['1.0.0', '1.1.0'], 12 * MiB).then(async () => (firstDeploy = await deploy(images.deploy, '1.0.0'))),
      inOrder(images.gone, ['1.0.0']).then(() => deploy(images.gone, '1.0.0')),
      inOrder(images.retire, ['1.0.0']).then(() => deploy(images.retire, '1.0.0')),
      ...['1.0.0', '1.1.0', '1.2.0'].map((v) => inOrder(images.kept, [v])),
    ]);
  });

  afterAll(async () => {
    agent.worker.shutdown();
    await agent.running;
    await agent.connection.close();
    await world.close();
  });

  it('deploy --dry-run lists per SDDC what it would do and starts nothing; the deploy then does just that', async () => {
    const image = images.deploy;
    const next = published[`${image}@1.1.0`];

    const record = (await world.deps.catalog.versions.get(image, '1.1.0'))!;
    // The two ISOs differ in their first block only: the SDDC holding 1.0.0 copies the rest from disk.
    expect(record.overlap).toMatchObject({ previousVersion: '1.0.0', sharedBlocks: expect.any(Number) });
    const toMove = (record.overlap!.blockCount - record.overlap!.sharedBlocks) * record.blockSize;
    expect(toMove).toBeLessThan(next.sizeBytes);

    const preview = await json('deploy', `${image}@latest`, '--to', `${good},${idle}`, '--dry-run');
    expect(preview).toEqual({
      dryRun: true,
      image,
      version: '1.1.0',
      sizeBytes: next.sizeBytes,
      results: [
        {
          sddc: good,
          dataCenter: 'dc-west',
          action: 'deploy',
          into: "a directory of its agent's datastore",
          sources: ['west-replica', 'east-primary'],
          bytesToMove: toMove,
          reusesVersion: '1.0.0',
          reason: null,
        },
        expect.objectContaining({
          sddc: idle,
          action: 'no-agent',
          bytesToMove: 0,
          reason: expect.stringContaining(`npm run agent -- ${idle}`),
        }),
      ],
      counts: { deploy: 1, 'no-agent': 1 },
      bytesToMove: toMove,
      refusals: [],
    });
    const text = await vmhub('deploy', `${image}@1.0.0`, '--to', `${good},${idle}`, '--dry-run');
    expect(text.code).toBe(0);
    const lines = text.stdout.split('\n');
    expect(lines[0]).toMatch(
      new RegExp(
        `^deploying ${image}@1\\.0\\.0 \\(\\d+\\.\\d MiB\\) to 2 SDDCs would find 1 already present, find no live agent for 1; nothing was started$`,
      ),
    );
    expect(lines[1]).toMatch(/^SDDC +DATA CENTER +WOULD +TO MOVE +DETAILS$/);
    expect(lines.find((l) => l.startsWith(good))).toMatch(/ already present +- +per the catalog/);
    expect(lines.find((l) => l.startsWith(idle))).toMatch(/ no agent +- +no agent has polled sddc-/);
    expect((await world.deps.catalog.deployments.of(image, '1.0.0')).map((d) => d.attempts?.length)).toEqual([1]);
    expect(await world.deps.catalog.deployments.of(image, '1.1.0')).toEqual([]);

    // The real deploy reads from where the preview said, and fetches the bytes it said.
    const deployed = (await json('deploy', `${image}@1.1.0`, '--to', good)) as DeployResult & { workflowId: string };
    expect(deployed.results).toEqual([
      expect.objectContaining({ sddc: good, status: 'deployed', source: 'west-replica', bytesFetched: toMove }),
    ]);
    // Listed once the last deploy is: the previews started none of their own.
    const query = `WorkflowType = 'DeployToSDDCs' AND VmImage = '${image}'`;
    let listed: string[] = [];
    await until('the last deploy listed', async () => (listed = await workflowIds(query)).includes(deployed.workflowId));
    expect(listed.sort()).toEqual([firstDeploy, deployed.workflowId].sort());
  });

  it('retire --dry-run lists the copies, library items and blobs with their bytes, and changes nothing', async () => {
    const image = images.gone;
    const version = published[`${image}@1.0.0`];
    // A content-library SDDC whose agent is not running holds an item of it, as the catalog records.
    const vcenter = 'https://vc-lab.example.com/';
    await world.deps.catalog.sddcs.add({
      name: lib,
      dataCenter: 'dc-east',
      taskQueue: `sddc-${lib}`,
      capacity: { cpus: 8, memoryMiB: 16384, diskGiB: 100 },
      target: {
        kind: 'content-library',
        vcenter,
        library: 'vmhub',
      },
    });
    const itemName = `${image}-1.0.0`;
    await world.deps.catalog.deployments.record({
      image,
      version: '1.0.0',
      sddc: lib,
      status: 'deployed',
      source: 'east-primary',
      target: { kind: 'content-library', vcenter, library: 'vmhub', itemId: 'item-7', itemName },
    });
    const size = version.sizeBytes;

    const preview = await json('retire', `${image}@1.0.0`, '--dry-run');
    expect(preview).toMatchObject({
      dryRun: true,
      image,
      version: '1.0.0',
      status: 'available',
      sizeBytes: size,
      sddcs: [
        {
          sddc: good,
          dataCenter: 'dc-west',
          library: null,
          bytes: size,
          where: expect.stringContaining(path.join(good, image, '1.0.0')),
        },
        { sddc: lib, dataCenter: 'dc-east', library: { vcenter, library: 'vmhub', item: itemName }, bytes: size },
      ],
      storage: [
        {
          location: 'east-primary',
          dataCenter: 'dc-east',
          role: 'primary',
          replica: null,
          blob: version.location.blob,
          bytes: size,
        },
        {
          location: 'west-replica',
          dataCenter: 'dc-west',
          role: 'replica',
          replica: 'verified',
          blob: version.location.blob,
          bytes: size,
        },
      ],
      bytes: { sddcs: 2 * size, storage: 2 * size },
      refusals: [expect.stringMatching(new RegExp(`^NoAgent: no agent has polled for ${lib} \\(task queue sddc-${lib}\\)`))],
    });
    const text = await vmhub('retire', `${image}@1.0.0`, '--dry-run');
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(
      new RegExp(
        `^retiring ${image}@1\\.0\\.0 \\(available, .*\\) would remove 2 SDDC copies \\(.*\\) and 2 blobs \\(.*\\); nothing was changed\n`,
      ),
    );
    expect(text.stdout).toMatch(
      new RegExp(`^${lib} +dc-east +\\S+ \\S+ +library vmhub/${itemName} on ${vcenter} \\(item item-7\\)$`, 'm'),
    );
    expect(text.stdout).toMatch(/^west-replica +dc-west +replica \(verified\) +/m);
    expect(text.stdout).toMatch(/^a retire now would be refused: NoAgent: /m);

    // Nothing changed: the version, its copies and its blobs are as they were.
    expect(await statusOf(image, '1.0.0')).toBe('available');
    expect((await world.deps.catalog.deployments.of(image, '1.0.0')).map((d) => [d.sddc, d.status])).toEqual([
      [good, 'deployed'],
      [lib, 'deployed'],
    ]);
    expect(await blobExists('east-primary', version)).toBe(true);
    expect(await blobExists('west-replica', version)).toBe(true);
    expect(fs.existsSync(path.join(datastore, good, image, '1.0.0'))).toBe(true);
    await expect(world.client.workflow.getHandle(`retire:${image}:1.0.0`).describe()).rejects.toThrow(/not found/i);
  });

  it('retire asks on a terminal, refuses without --yes elsewhere, and retires with --yes', async () => {
    const image = images.retire;
    const version = published[`${image}@1.0.0`];

    const refused = await vmhub('retire', `${image}@1.0.0`);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toBe('');
    expect(refused.stderr).toBe(
      `vmhub: NotConfirmed: retiring ${image}@1.0.0 removes it from 1 SDDC and 2 storage locations and cannot be undone; nobody can confirm here (not a terminal): pass --yes to retire it (\`vmhub retire ${image}@1.0.0 --yes\`), or --dry-run to see what it would remove\n`,
    );

    // On a terminal it asks; "n" changes nothing.
    const asked = await onTerminal(['retire', `${image}@1.0.0`], 'n\n');
    expect(asked.screen).toContain(`retire ${image}@1.0.0 from 1 SDDC and 2 storage locations? [y/N]`);
    expect(asked.screen).toContain('vmhub: NotConfirmed: not confirmed; nothing was changed');
    expect(asked.code).toBe(1);
    expect(await statusOf(image, '1.0.0')).toBe('available');
    expect(await blobExists('east-primary', version)).toBe(true);

    const retired = await json('retire', `${image}@1.0.0`, '--yes');
    expect(retired).toMatchObject({
      workflowId: `retire:${image}:1.0.0`,
      status: 'retired',
      blobsRemoved: ['east-primary', 'west-replica'],
    });
    expect(retired.sddcs).toEqual([
      expect.objectContaining({ sddc: good, files: expect.arrayContaining([expect.stringMatching(/\.iso$/)]) }),
    ]);
    expect(await statusOf(image, '1.0.0')).toBe('retired');
    expect(await blobExists('east-primary', version)).toBe(false);
  });

  it('retention apply --dry-run lists the versions it would retire and changes nothing; retention apply retires them', async () => {
    const image = images.kept;
    await world.deps.catalog.retention.set({ image, keep: 2 });
    // A retention run on another task queue of the namespace (another deployment's, no worker polls it here)
    // stays running: apply does not wait for it.
    const elsewhere = await world.client.workflow.start('ApplyRetention', {
      args: [{}],
      taskQueue: `pv-elsewhere-${id}`,
      workflowId: `retention:all:pv-elsewhere-${id}`,
    });

    const oldest = published[`${image}@1.0.0`];
    const size = oldest.sizeBytes;
    const preview = await json('retention', 'apply', '--dry-run');
    expect(preview).toEqual({
      dryRun: true,
      image: null,
      versions: [
        expect.objectContaining({
          image,
          version: '1.0.0',
          why: 'beyond the newest 2 versions its policy keeps, and no SDDC holds it',
          sddcs: [],
          storage: [expect.objectContaining({ location: 'east-primary' }), expect.objectContaining({ location: 'west-replica' })],
          bytes: { sddcs: 0, storage: 2 * size },
          refusals: [],
        }),
      ],
      bytes: { sddcs: 0, storage: 2 * size },
      limit: 100,
    });
    const text = await vmhub('retention', 'apply', '--image', image, '--dry-run');
    expect(text.stdout.split('\n').slice(0, 3)).toEqual([
      expect.stringMatching(
        /^retention would retire 1 version, removing \S+ \S+ from storage and 0 B from SDDCs; nothing was changed$/,
      ),
      '',
      `${image}@1.0.0: beyond the newest 2 versions its policy keeps, and no SDDC holds it`,
    ]);
    for (const v of ['1.0.0', '1.1.0', '1.2.0']) expect(await statusOf(image, v)).toBe('available');
    expect(await blobExists('east-primary', oldest)).toBe(true);

    const applied = await vmhub('retention', 'apply', '--image', image, '--json');
    expect(applied.code).toBe(0);
    expect(JSON.parse(applied.stdout)).toEqual({
      dryRun: false,
      workflowId: expect.stringMatching(new RegExp(`^retention:${image}:[0-9a-f]{8}$`)),
      retired: [`${image}@1.0.0`],
      failed: [],
    });
    expect(await statusOf(image, '1.0.0')).toBe('retired');
    expect(await statusOf(image, '1.1.0')).toBe('available');
    expect(await blobExists('east-primary', oldest)).toBe(false);
    await elsewhere.terminate('the test is over');
  });

  /** Runs vmhub under a pseudo-terminal (`script`), typing `input`; returns what the terminal showed. */
  function onTerminal(args: string[], input: string): Promise<{ code: number | null; screen: string }> {
    const command = [process.execPath, VMHUB, ...args].map((a) => `'${a}'`).join(' ');
    const child = spawn('script', ['-qec', command, '/dev/null'], { env: { ...env, TERM: 'dumb' }, cwd: ROOT });
    let screen = '';
    let typed = false;
    const onData = (chunk: Buffer) => {
      screen += chunk.toString();
      // Typed once the question is there, as an operator would.
      if (!typed && screen.includes('[y/N]')) {
        typed = true;
        child.stdin.write(input);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    return new Promise((resolve) => child.on('close', (code) => resolve({ code, screen })));
  }
});
