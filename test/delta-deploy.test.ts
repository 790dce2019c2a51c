import { execFileSync } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { createAgentActivities, type DownloadInput, type DownloadOutput } from '../src/activities/agent';
import { blockIndexPath, parseBlockIndex } from '../src/deploy/block-index';
import { blockDigestOf, blockId } from '../src/storage/block-ids';
import type { DeployInput, DeployResult, DeployResultRow } from '../src/shared/deploy-input';
import type { PublishResult } from '../src/shared/publish-input';
import { spawnWorker, until, type WorkerProcess } from './harness/worker-process';
import { filler, tempDir } from './images/build';
import { loadTopology } from '../src/topology/topology';
import { agentVcenterEnv, itemDigests, testVcenter } from './harness/vcenter';
import { VcenterConnection } from '../src/sddc/library-import';
import type { ContentLibraryTarget } from '../src/shared/target-kinds/kind';
import { repositoryRoot, startWorld, writeImageFile, type TestWorld } from './helpers';
import { signBeside } from './harness/signing';

/**
 * Delta deploys on the real services, each SDDC's agent a real worker process: a new version of an image
 * deployed to an SDDC that holds an earlier one moves only the blocks that changed, copying the others
 * from the SDDC's own disk, and still ends with a file whose SHA-256 is the published one.
 */
const MiB = 2 ** 20;
const GiB = 1024 * MiB;
const BLOCK = 8 * MiB;

/** An ISO holding one payload file of the given size. */
function writeIso(file: string, payloadBytes: number): string {
  const dir = tempDir('vmhub-delta-iso-');
  fs.writeFileSync(path.join(dir, 'README.TXT'), 'vmhub delta deploy test volume\n');
  writeImageFile(path.join(dir, 'payload.bin'), payloadBytes, 7);
  execFileSync('xorriso', ['-as', 'mkisofs', '-quiet', '-J', '-V', 'DELTA', '-o', file, dir], { stdio: 'ignore' });
  fs.rmSync(dir, { recursive: true, force: true });
  return file;
}

/** A copy of `from` with a few bytes of each given block changed in place: same size, same other blocks. */
function changedCopy(from: string, to: string, blocks: number[], seed: number): string {
  fs.copyFileSync(from, to);
  const fd = fs.openSync(to, 'r+');
  try {
    for (const b of blocks) fs.writeSync(fd, Buffer.alloc(4096, seed + b), 0, 4096, b * BLOCK + 12345);
  } finally {
    fs.closeSync(fd);
  }
  return to;
}

const sha256Of = (file: string) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');

describe('delta deploys', () => {
  let world: TestWorld;
  const agents = new Map<string, WorkerProcess>();
  const queues = new Map<string, string>();
  const run = randomUUID().slice(0, 6);
  const datastores = path.join(repositoryRoot(), '..', `sddc-delta-${run}`);
  const image = `delta-${run}`;
  let library: { target: ContentLibraryTarget; login: { username: string; password: string } };

  async function register(name: string, target?: ContentLibraryTarget, env: NodeJS.ProcessEnv = {}): Promise<void> {
    queues.set(name, `sddc-${name}-${randomUUID().slice(0, 8)}`);
    await world.deps.catalog.sddcs.add({
      name,
      dataCenter: 'dc-east',
      taskQueue: queues.get(name)!,
      capacity: { cpus: 64, memoryMiB: 262144, diskGiB: 2048 },
      target,
    });
    agents.set(
      name,
      spawnWorker(['agent', name], {
        VMHUB_AGENT_TASK_QUEUE: queues.get(name)!,
        VMHUB_DATASTORE: path.join(datastores, name),
        ...env,
      }),
    );
    await until(
      `${name}'s agent polling`,
      async () => (await world.deps.temporal.recentPollers(queues.get(name)!, 'activity')) > 0,
    );
  }

  async function publish(file: string, img: string, version: string): Promise<PublishResult> {
    return (await world.client.workflow.execute('PublishImage', {
      args: [{ source: path.basename(file), image: img, version }],
      taskQueue: world.config.taskQueue,
      workflowId: `publish:${img}:${version}:${randomUUID()}`,
    })) as PublishResult;
  }

  async function deploy(input: DeployInput): Promise<Record<string, DeployResultRow>> {
    const result = (await world.client.workflow.execute('DeployToSDDCs', {
      args: [input],
      taskQueue: world.config.taskQueue,
      workflowId: `deploy:${input.image}:${input.version}:${randomUUID()}`,
    })) as DeployResult;
    return Object.fromEntries(result.results.map((r) => [r.sddc, r]));
  }

  beforeAll(async () => {
    world = await startWorld({ blockSizeBytes: BLOCK });
    await register('holder');
    await register('fresh');
    // east-1's vCenter (a vcsim), with a library new to this run; the agent logs in as east-1's would.
    const seed = loadTopology(world.config.topologyPath).sddcs.find((s) => s.name === 'east-1')!;
    const target = { ...(seed.target as ContentLibraryTarget), library: `vmhub-delta-${run}` };
    library = { target, login: { username: 'vmhub-agent', password: `pw-${randomUUID()}` } };
    await register('library', target, agentVcenterEnv(target.vcenter, library.login));
  });
  afterAll(async () => {
    for (const a of agents.values()) await a.stop();
    await world.close();
    fs.rmSync(datastores, { recursive: true, force: true });
    for (const f of fs.readdirSync(repositoryRoot()).filter((n) => n.startsWith(image))) {
      fs.rmSync(path.join(repositoryRoot(), f), { force: true });
    }
  });

  it(
    'an SDDC holding 1.0.0 of a 1 GiB ISO fetches only the changed 1 % of 1.0.1; one without it fetches everything',
    async () => {
      const v1 = writeIso(path.join(repositoryRoot(), `${image}-1.0.0.iso`), GiB);
      const size = fs.statSync(v1).size;
      const blocks = Math.ceil(size / BLOCK);
      // 1 % of the blocks, rounded up, spread over the payload.
      const changed = Array.from({ length: Math.ceil(blocks / 100) }, (_, i) =>
        Math.floor(((i + 1) * blocks) / (Math.ceil(blocks / 100) + 1)),
      );
      const v2 = changedCopy(v1, path.join(repositoryRoot(), `${image}-1.0.1.iso`), changed, 1);

      const first = await publish(v1, image, '1.0.0');
      const initial = await deploy({ image, version: '1.0.0', sddcs: ['holder'] });
      expect(initial.holder).toMatchObject({ status: 'deployed', bytesFetched: size, bytesReusedLocally: 0 });
      // The deployed version keeps its block index beside it: the block size and the committed IDs' digests.
      const index = parseBlockIndex(fs.readFileSync(blockIndexPath(initial.holder.path!), 'utf8'));
      expect(index).toMatchObject({ sha256: first.sha256, sizeBytes: size, blockSize: BLOCK });
      expect(index!.digests).toHaveLength(blocks);

      const second = await publish(v2, image, '1.0.1');
      expect(second.sha256).not.toBe(first.sha256);
      // One after the other, so each deploy's time is its own.
      let started = Date.now();
      const { holder } = await deploy({ image, version: '1.0.1', sddcs: ['holder'] });
      const deltaSeconds = (Date.now() - started) / 1000;
      started = Date.now();
      const { fresh } = await deploy({ image, version: '1.0.1', sddcs: ['fresh'] });
      const fullSeconds = (Date.now() - started) / 1000;
      expect(holder.status).toBe('deployed');
      expect(holder.bytesFetched).toBeLessThanOrEqual(0.05 * size);
      expect(holder.bytesFetched).toBe(changed.length * BLOCK);
      expect(holder.bytesReusedLocally).toBe(size - holder.bytesFetched!);
      expect(sha256Of(holder.path!)).toBe(second.sha256);

      expect(fresh).toMatchObject({ status: 'deployed', bytesFetched: size, bytesReusedLocally: 0 });
      expect(sha256Of(fresh.path!)).toBe(second.sha256);

      const recorded = await world.deps.catalog.deployments.of(image, '1.0.1');
      expect(recorded.map((d) => [d.sddc, d.bytesFetched, d.bytesReusedLocally])).toEqual([
        ['fresh', size, 0],
        ['holder', holder.bytesFetched, holder.bytesReusedLocally],
      ]);
      fs.rmSync(v1);
      fs.rmSync(v2);
      const figures = {
        sizeBytes: size,
        blocks,
        changedBlocks: changed.length,
        delta: { bytesFetched: holder.bytesFetched, bytesReusedLocally: holder.bytesReusedLocally, seconds: deltaSeconds },
        full: { bytesFetched: fresh.bytesFetched, seconds: fullSeconds },
      };
      fs.mkdirSync(path.join(__dirname, '..', 'test-output'), { recursive: true });
      fs.writeFileSync(path.join(__dirname, '..', 'test-output', 'delta-deploy.json'), `${JSON.stringify(figures, null, 2)}\n`);
      // Two 1 GiB publishes (each replicated) and three 1 GiB deploys, on a machine other tests share.
    },
    15 * 60_000,
  );

  it('downloads a block whose bytes on disk no longer match its digest, and the file still verifies', async () => {
    const small = `${image}-small`;
    const v1 = writeIso(path.join(repositoryRoot(), `${small}-1.0.0.iso`), 64 * MiB);
    const v2 = changedCopy(v1, path.join(repositoryRoot(), `${small}-1.0.1.iso`), [3], 2);
    await publish(v1, small, '1.0.0');
    const initial = await deploy({ image: small, version: '1.0.0', sddcs: ['holder'] });
    // Damage a block the next version shares: its copy must be refused and the block downloaded.
    const fd = fs.openSync(initial.holder.path!, 'r+');
    fs.writeSync(fd, Buffer.from('damaged'), 0, 7, 5 * BLOCK + 99);
    fs.closeSync(fd);

    const second = await publish(v2, small, '1.0.1');
    const { holder } = await deploy({ image: small, version: '1.0.1', sddcs: ['holder'] });
    expect(holder.status).toBe('deployed');
    expect(holder.bytesFetched).toBe(2 * BLOCK);
    expect(holder.bytesReusedLocally).toBe(fs.statSync(v2).size - 2 * BLOCK);
    expect(sha256Of(holder.path!)).toBe(second.sha256);
    // The digest recorded beside the copy is that of its bytes.
    expect(fs.readFileSync(`${holder.path!}.sha256`, 'utf8').split(/\s/)[0]).toBe(sha256Of(holder.path!));
  });

  it(
    'a content-library SDDC keeps its verified copy as the base, fetches only the changed block, and imports the new item',
    async () => {
      const img = `${image}-cl`;
      const v1 = writeIso(path.join(repositoryRoot(), `${img}-1.0.0.iso`), 32 * MiB);
      const v2 = changedCopy(v1, path.join(repositoryRoot(), `${img}-1.0.1.iso`), [2], 3);
      await publish(v1, img, '1.0.0');
      const initial = await deploy({ image: img, version: '1.0.0', sddcs: ['library'] });
      expect(initial.library).toMatchObject({ status: 'deployed', bytesFetched: fs.statSync(v1).size, bytesReusedLocally: 0 });
      const imageDir = path.join(datastores, 'library', img);
      expect(fs.readdirSync(imageDir)).toEqual(['1.0.0']);

      const second = await publish(v2, img, '1.0.1');
      const { library } = await deploy({ image: img, version: '1.0.1', sddcs: ['library'] });
      expect(library).toMatchObject({ status: 'deployed', target: { kind: 'content-library', itemName: `${img}-1.0.1` } });
      expect(library.bytesFetched).toBe(BLOCK);
      expect(library.bytesReusedLocally).toBe(fs.statSync(v2).size - BLOCK);
      // The new version's verified copy replaces the old one as the base of the next.
      expect(fs.readdirSync(imageDir)).toEqual(['1.0.1']);
      expect(sha256Of(path.join(imageDir, '1.0.1', `${img}-1.0.1.iso`))).toBe(second.sha256);
    },
    5 * 60_000,
  );

  it('a content-library SDDC whose kept block changed on disk: the session that took those bytes is failed, the file fetched in full, the item whole', async () => {
    const img = `${image}-clrot`;
    const v1 = writeIso(path.join(repositoryRoot(), `${img}-1.0.0.iso`), 24 * MiB);
    const v2 = changedCopy(v1, path.join(repositoryRoot(), `${img}-1.0.1.iso`), [1], 4);
    await publish(v1, img, '1.0.0');
    expect((await deploy({ image: img, version: '1.0.0', sddcs: ['library'] })).library.status).toBe('deployed');
    // A block 1.0.1 keeps in place, changed on disk after it verified: only the whole file's SHA-256 tells.
    const fd = fs.openSync(path.join(datastores, 'library', img, '1.0.0', `${img}-1.0.0.iso`), 'r+');
    fs.writeSync(fd, Buffer.from('rot'), 0, 3, 2 * BLOCK + 99);
    fs.closeSync(fd);

    const second = await publish(v2, img, '1.0.1');
    const row = (await deploy({ image: img, version: '1.0.1', sddcs: ['library'] })).library;
    // Streamed already, the copied bytes are not mended in place: the whole file is fetched again, and sent again.
    expect(row).toMatchObject({ status: 'deployed', bytesFetched: fs.statSync(v2).size, bytesReusedLocally: 0 });
    const conn = await VcenterConnection.open(library.target, testVcenter(library.target.vcenter, library.login));
    try {
      expect(await itemDigests(conn.library, row.target!.itemId)).toEqual({ [`${img}-1.0.1.iso`]: second.sha256 });
      const sessions = await conn.library.updateSessionsOf(row.target!.itemId);
      expect(sessions.map((x) => x.state).sort()).toEqual(['DONE', 'ERROR']);
    } finally {
      await conn.close();
    }
  });

  it('downloads the file in full when one built from local blocks fails the SHA-256: a block list whose IDs lie', async () => {
    const small = 2 ** 20;
    const store = world.deps.storage.store('east-primary');
    const digestOf = (b: Buffer) => blockDigestOf(createHash('sha256').update(b).digest('hex'));
    const blocksOf = (bytes: Buffer) =>
      Array.from({ length: bytes.length / small }, (_, i) => bytes.subarray(i * small, (i + 1) * small));
    /** A committed blob as a publish leaves it, except that `digests` may name other digests than the bytes have. */
    async function commit(version: string, bytes: Buffer, digests: string[]): Promise<DownloadInput> {
      const blob = `${image}-forged/${version}/${image}-forged-${version}.iso`;
      const ids = digests.map((d, i) => blockId(i, d));
      for (const [i, b] of blocksOf(bytes).entries()) await store.stageBlock(blob, ids[i], b);
      const sha256 = createHash('sha256').update(bytes).digest('hex');
      await store.commitBlocks(blob, ids, { metadata: { sha256 } });
      // Signed as a publish signs: the lie is in the block IDs, which no signature covers.
      await signBeside(store, blob, {
        image: `${image}-forged`,
        version,
        format: 'iso',
        sha256,
        sizeBytes: bytes.length,
        members: [],
      });
      return {
        sddc: 'east-1',
        image: `${image}-forged`,
        version,
        format: 'iso',
        sha256,
        sizeBytes: bytes.length,
        blob,
        sources: [{ location: 'east-primary', dataCenter: 'dc-east', role: 'primary' }],
      };
    }
    const agent = createAgentActivities({
      storage: world.deps.storage,
      config: { ...world.config, datastore: path.join(datastores, 'forged') },
      sddc: 'east-1',
    });
    const download = (input: DownloadInput) =>
      new MockActivityEnvironment({}, { logger: new DefaultLogger('ERROR') }).run(
        agent.downloadImage,
        input,
      ) as Promise<DownloadOutput>;

    const v1 = filler(4 * small, 11);
    const v2 = Buffer.from(v1);
    v2.fill(1, 2 * small, 2 * small + 100);
    const first = await download(await commit('1.0.0', v1, blocksOf(v1).map(digestOf)));
    expect(first).toMatchObject({ status: 'deployed', bytesFetched: v1.length, bytesReusedLocally: 0 });
    // Block 2's ID names the digest of 1.0.0's block 2, not of its own bytes: every block looks shared.
    const lying = await commit('1.0.1', v2, blocksOf(v1).map(digestOf));
    const second = await download(lying);
    expect(second).toMatchObject({ status: 'deployed', source: 'east-primary', bytesFetched: v2.length, bytesReusedLocally: 0 });
    expect(second.sourceFailures).toEqual([]);
    expect(fs.readFileSync(second.path).equals(v2)).toBe(true);
  });
});
