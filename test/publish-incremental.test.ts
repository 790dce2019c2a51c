import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { PublishInput, PublishProgress, PublishResult } from '../src/shared/publish-input';
import { publishWorkflowId } from '../src/shared/publish-input';
import { parseBlockId } from '../src/storage/block-ids';
import { readBlob, repositoryRoot, startWorld, writeIsoFile, type TestWorld } from './helpers';

const MiB = 1024 * 1024;
/** The smallest block vmhub plans, and enough of them that one changed block is 5 % of the image. */
const BLOCK = 4 * MiB;
const BLOCKS = 20;

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

/**
 * A new version of an image starts as a server-side copy of the earlier version's blob on Azurite and
 * sends only the blocks that differ; what it commits is what a full publish of the same source commits.
 */
describe('PublishImage of a version that starts from an earlier one', () => {
  let world: TestWorld;
  const dir = `incremental-${randomUUID().slice(0, 8)}`;
  beforeAll(async () => {
    world = await startWorld({ blockSizeBytes: BLOCK, transferConcurrency: 4, rangeFanOut: 2 });
    fs.mkdirSync(path.join(repositoryRoot(), dir), { recursive: true });
  });
  afterAll(() => world.close());

  const source = (name: string) => path.join(repositoryRoot(), dir, name);
  /** `from` with the blocks at `changed` overwritten with other bytes, and the pairs in `swapped` exchanged. */
  function variant(from: string, name: string, changed: number[], swapped: Array<[number, number]> = []): string {
    const bytes = fs.readFileSync(source(from));
    for (const i of changed) bytes.fill(i + 1, i * BLOCK, i * BLOCK + 1000);
    for (const [a, b] of swapped) {
      const blockA = Buffer.from(bytes.subarray(a * BLOCK, (a + 1) * BLOCK));
      bytes.copy(bytes, a * BLOCK, b * BLOCK, (b + 1) * BLOCK);
      blockA.copy(bytes, b * BLOCK);
    }
    fs.writeFileSync(source(name), bytes);
    return `${dir}/${name}`;
  }

  const publish = (input: PublishInput) =>
    world.client.workflow.start('PublishImage', {
      args: [input],
      taskQueue: world.config.taskQueue,
      workflowId: `${publishWorkflowId(input.image, input.version!)}:${randomUUID()}`,
    });
  const published = async (input: PublishInput) => (await (await publish(input)).result()) as PublishResult;
  const committed = async (result: PublishResult) =>
    readBlob(world.deps.storage.store(result.location.storage), result.location.blob);

  it('sends only the changed blocks, and commits the bytes a full publish of the same source commits', async () => {
    writeIsoFile(source('v1.iso'), BLOCKS * BLOCK, 41);
    const v1 = await published({ source: `${dir}/v1.iso`, image: 'grown', version: '1.0.0' });
    expect(v1.sent).toEqual({ bytes: BLOCKS * BLOCK, blocks: BLOCKS });

    const v2Source = variant('v1.iso', 'v2.iso', [9]);
    const handle = await publish({ source: v2Source, image: 'grown', version: '1.1.0' });
    const v2 = (await handle.result()) as PublishResult;
    expect(v2.sent).toEqual({ bytes: BLOCK, blocks: 1, from: '1.0.0' });
    expect(v2.sent!.bytes / v2.sizeBytes).toBeLessThanOrEqual(0.05);
    expect(await handle.query<PublishProgress>('progress')).toMatchObject({
      startedFrom: '1.0.0',
      blocksUploaded: 1,
      blocksReused: BLOCKS - 1,
      bytesUploaded: BLOCK,
    });

    // The same source published in full, as the first version of another image.
    const full = await published({ source: v2Source, image: 'grown-full', version: '1.1.0' });
    expect(full.sent).toEqual({ bytes: BLOCKS * BLOCK, blocks: BLOCKS });
    const [incremental, whole] = [await committed(v2), await committed(full)];
    expect(sha256(incremental)).toBe(sha256(fs.readFileSync(source('v2.iso'))));
    expect(sha256(incremental)).toBe(sha256(whole));
    expect(v2.sha256).toBe(full.sha256);
    // The committed list names each block at its own position, as a full publish does.
    const ids = await world.deps.storage.store(v2.location.storage).committedBlocks(v2.location.blob);
    expect(ids.map((b) => parseBlockId(b.name)?.index)).toEqual([...Array(BLOCKS).keys()]);
    expect(ids.map((b) => b.name)).toEqual(
      (await world.deps.storage.store(full.location.storage).committedBlocks(full.location.blob)).map((b) => b.name),
    );

    // Retiring the base afterwards takes nothing from the new version: its blob is a copy, not a reference.
    await world.deps.storage.store(v1.location.storage).deleteIfExists(v1.location.blob);
    expect(sha256(await committed(v2))).toBe(v2.sha256);

    // Two blocks that swapped places are sent again: a block's ID names its position as well as its bytes.
    const v3 = await published({ source: variant('v2.iso', 'v3.iso', [], [[3, 17]]), image: 'grown', version: '1.2.0' });
    expect(v3.sent).toEqual({ bytes: 2 * BLOCK, blocks: 2, from: '1.1.0' });
    expect(sha256(await committed(v3))).toBe(sha256(fs.readFileSync(source('v3.iso'))));
    expect(v3.sha256).toBe(sha256(fs.readFileSync(source('v3.iso'))));
  });

  it('publishes in full when the earlier version failed or its blob is missing', async () => {
    writeIsoFile(source('lost-1.iso'), BLOCKS * BLOCK, 45);
    const v1 = await published({ source: `${dir}/lost-1.iso`, image: 'lost', version: '1.0.0' });
    await world.deps.storage.store(v1.location.storage).deleteIfExists(v1.location.blob);
    const v2 = await published({ source: variant('lost-1.iso', 'lost-2.iso', [2]), image: 'lost', version: '1.0.1' });
    expect(v2.sent).toEqual({ bytes: BLOCKS * BLOCK, blocks: BLOCKS });
    expect(sha256(await committed(v2))).toBe(sha256(fs.readFileSync(source('lost-2.iso'))));

    // A version that failed (its source pinned to other bytes) is no base.
    const failed = publish({
      source: variant('lost-2.iso', 'lost-3.iso', [4]),
      image: 'lost',
      version: '1.0.2',
      sha256: '0'.repeat(64),
    });
    await expect((await failed).result()).rejects.toThrow();
    expect((await world.deps.catalog.versions.get('lost', '1.0.2'))?.status).toBe('failed');
    const v4 = await published({ source: variant('lost-2.iso', 'lost-4.iso', [5]), image: 'lost', version: '1.0.3' });
    expect(v4.sent).toEqual({ bytes: BLOCK, blocks: 1, from: '1.0.1' });
    expect(sha256(await committed(v4))).toBe(sha256(fs.readFileSync(source('lost-4.iso'))));
  });
});
