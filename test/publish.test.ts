import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { PublishInput, PublishProgress, PublishResult } from '../src/shared/publish-input';
import { publishWorkflowId } from '../src/shared/publish-input';
import { startFileServer } from './harness/range-server';
import { blobServiceClient } from '../src/storage/azure/clients';
import { unlessNotFound } from '../src/storage/block-store';
import { primaryLocation } from '../src/topology/topology';
import { readBlob, repositoryRoot, startWorld, writeImageFile, writeIsoFile, type TestWorld, workflowFailure } from './helpers';

const MiB = 1024 * 1024;

function sha256(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

/** An ISO-shaped file in the repository: incompressible bytes with the ISO 9660 signature where a reader looks for it. */
const writeIso = (name: string, sizeBytes: number, seed: number) =>
  writeIsoFile(path.join(repositoryRoot(), name), sizeBytes, seed);

describe('PublishImage', () => {
  let world: TestWorld;
  beforeAll(async () => {
    world = await startWorld({ blockSizeBytes: 4 * MiB, transferConcurrency: 4, rangeFanOut: 2, sourceHosts: ['127.0.0.1'] });
  });
  afterAll(() => world.close());

  const publish = (input: PublishInput, version = input.version ?? 'none') =>
    world.client.workflow.execute('PublishImage', {
      args: [input],
      taskQueue: world.config.taskQueue,
      workflowId: `${publishWorkflowId(input.image, version)}:${randomUUID()}`,
    }) as Promise<PublishResult>;

  const failure = (input: PublishInput) => workflowFailure(publish(input));

  async function download(result: PublishResult): Promise<Buffer> {
    return readBlob(world.deps.storage.store(result.location.storage), result.location.blob);
  }

  it('stages many blocks in parallel, commits them in order and records the verified SHA-256', async () => {
    const file = writeIso('multi.iso', 37 * MiB + 12345, 7);
    const handle = await world.client.workflow.start('PublishImage', {
      args: [{ source: 'multi.iso', image: 'multi', version: '1.0.0' }],
      taskQueue: world.config.taskQueue,
      workflowId: publishWorkflowId('multi', '1.0.0'),
    });
    const result = (await handle.result()) as PublishResult;

    expect(result).toMatchObject({ image: 'multi', version: '1.0.0', format: 'iso', sizeBytes: 37 * MiB + 12345 });
    expect(result.blockSize).toBe(4 * MiB);
    expect(result.blockCount).toBe(10);
    expect(result.sha256).toBe(sha256(file));
    expect((await download(result)).equals(fs.readFileSync(file))).toBe(true);

    const props = await world.deps.storage.store('east-primary').getProperties(result.location.blob);
    expect(props.metadata.sha256).toBe(result.sha256);
    expect(props.contentType).toBe('application/x-iso9660-image');

    const record = await world.deps.catalog.versions.get('multi', '1.0.0');
    expect(record).toMatchObject({ status: 'available', sha256: result.sha256, sizeBytes: result.sizeBytes, format: 'iso' });

    const progress = await handle.query<PublishProgress>('progress');
    expect(progress).toMatchObject({
      phase: 'done',
      bytesTotal: result.sizeBytes,
      bytesStaged: result.sizeBytes,
      blocksStaged: 10,
      blocksUploaded: 10,
    });

    const described = await handle.describe();
    expect(described.searchAttributes.VmImage).toEqual(['multi']);
    expect(described.searchAttributes.VmImageVersion).toEqual(['1.0.0']);
  });

  it('publishes from an http(s) server that answers Range requests', async () => {
    const file = writeIso('over-http.iso', 9 * MiB + 1, 11);
    const server = await startFileServer(repositoryRoot());
    try {
      const result = await publish({
        source: server.url('over-http.iso'),
        image: 'over-http',
        version: '2.0.0-rc.1+b7',
        sha256: sha256(file),
      });
      expect(result.sha256).toBe(sha256(file));
      expect(result.blockCount).toBe(3);
      expect((await download(result)).equals(fs.readFileSync(file))).toBe(true);
    } finally {
      await server.close();
    }
  });

  it('returns the same record for the same bytes, and refuses other bytes under the same version', async () => {
    writeIso('same.iso', 5 * MiB, 21);
    const first = await publish({ source: 'same.iso', image: 'same', version: '1.2.3' });
    const again = await publish({ source: 'same.iso', image: 'same', version: '1.2.3' });
    expect(again).toEqual({ ...first, sent: { bytes: 0, blocks: 0 }, alreadyPublished: true });

    writeIso('other.iso', 5 * MiB, 22);
    const conflict = await failure({ source: 'other.iso', image: 'same', version: '1.2.3' });
    expect(conflict.type).toBe('VersionConflict');
    expect(conflict.message).toContain(first.sha256);

    const props = await world.deps.storage.store('east-primary').getProperties(first.location.blob);
    expect(props.metadata.sha256).toBe(first.sha256);
    expect(await world.deps.catalog.versions.get('same', '1.2.3')).toMatchObject({ status: 'available', sha256: first.sha256 });
  });

  describe('bad input fails with a typed error and records nothing', () => {
    beforeAll(() => {
      writeIso('good.iso', 5 * MiB, 31);
      writeImageFile(path.join(repositoryRoot(), 'random.bin'), 3 * MiB, 32);
      fs.writeFileSync(path.join(repositoryRoot(), 'empty.iso'), '');
      const outside = path.join(path.dirname(repositoryRoot()), 'outside.iso');
      writeIso('../outside.iso', MiB, 33);
      fs.symlinkSync(outside, path.join(repositoryRoot(), 'escape.iso'));
    });

    const cases: Array<[string, Partial<PublishInput>, string]> = [
      ['a path with ..', { source: '../outside.iso' }, 'InvalidSource'],
      ['an absolute path outside the roots', { source: '/etc/passwd' }, 'InvalidSource'],
      ['a symlink out of the root', { source: 'escape.iso' }, 'InvalidSource'],
      ['a missing file', { source: 'nope.iso' }, 'InvalidSource'],
      ['an unsupported scheme', { source: 'ftp://example.invalid/x.iso' }, 'InvalidSource'],
      ['an empty source', { source: '' }, 'InvalidSource'],
      ['an image name with capitals', { image: 'Bad_Name' }, 'InvalidInput'],
      ['a version that is not semantic', { version: '16.1' }, 'InvalidInput'],
      ['no version for an ISO', { version: undefined }, 'InvalidInput'],
      ['an unknown format', { format: 'vmdk' as never }, 'InvalidInput'],
      ['a format that disagrees with the bytes', { format: 'ova' }, 'InvalidImage'],
      ['bytes of no supported format', { source: 'random.bin' }, 'InvalidImage'],
      ['an empty file', { source: 'empty.iso' }, 'InvalidImage'],
      ['a pinned sha256 that is not hexadecimal', { sha256: 'abc' }, 'InvalidInput'],
    ];

    it.each(cases)('%s', async (_name, change, type) => {
      const image = `bad-${randomUUID().slice(0, 8)}`;
      const input = { source: 'good.iso', image, version: '1.0.0', ...change } as PublishInput;
      const err = await failure(input);
      expect(err.type).toBe(type);
      expect(err.message.length).toBeGreaterThan(10);
      expect(err.message).not.toContain('\n');
      expect(await world.deps.catalog.versions.collection.countDocuments({ image })).toBe(0);
      // The store lists no blobs: the account's own client looks for any under the image's name.
      const primary = primaryLocation(world.deps.storage.topology);
      const blobs = [];
      for await (const b of blobServiceClient(primary)
        .getContainerClient(primary.container)
        .listBlobsFlat({ prefix: `${image}/` }))
        blobs.push(b.name);
      expect(blobs).toEqual([]);
    });

    it('an image that does not hash to its pinned sha256 commits nothing and leaves no staged block', async () => {
      const err = await failure({ source: 'good.iso', image: 'pinned', version: '1.0.0', sha256: 'ab'.repeat(32) });
      expect(err.type).toBe('ManifestMismatch');
      expect(err.message).toContain('ab'.repeat(32));
      expect(await world.deps.catalog.versions.get('pinned', '1.0.0')).toMatchObject({ status: 'failed' });
      const store = world.deps.storage.store('east-primary');
      const blob = 'pinned/1.0.0/pinned-1.0.0.iso';
      expect(await unlessNotFound(store.getProperties(blob))).toBeUndefined();
      const staged = await store.uncommittedBlocks(blob).then(
        (l) => l.length,
        () => 0,
      );
      expect(staged).toBe(0);
    });

    it('an http server without Range support', async () => {
      const server = await startFileServer(repositoryRoot(), false);
      try {
        const err = await failure({ source: server.url('good.iso'), image: 'no-ranges', version: '1.0.0' });
        expect(err.type).toBe('InvalidSource');
        expect(err.message).toContain('Range');
      } finally {
        await server.close();
      }
    });
  });
});
