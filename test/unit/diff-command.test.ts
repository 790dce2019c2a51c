import type { Catalog } from '../../src/catalog/catalog';
import type { ImageVersionRecord } from '../../src/catalog/image-records';
import * as diff from '../../src/cli/diff';
import type { CliDeps } from '../../src/cli/deps';
import { loadConfig } from '../../src/config';
import type { ImageMetadata } from '../../src/images/inspect';
import { describeOvf } from '../../src/images/ovf/metadata';
import { parseOvf } from '../../src/images/ovf/envelope';
import type { Block, BlockStores } from '../../src/storage/block-store';
import { blockId } from '../../src/storage/block-ids';
import { capture } from '../harness/cli-io';
import { applianceDescriptor, type ApplianceShape } from '../images/build';

const digest = (n: number) => n.toString(16).padStart(32, '0');
const BLOCK = 4;

function version(v: string, digests: number[], shape: ApplianceShape | undefined, sizeBytes = digests.length * BLOCK) {
  const metadata = shape && ({ ...describeOvf(parseOvf(applianceDescriptor(shape))), kind: 'ova' } as unknown as ImageMetadata);
  const record = {
    image: 'app',
    version: v,
    status: 'available',
    format: 'ova',
    sizeBytes,
    sha256: digest(digests.length).repeat(2),
    location: { storage: 'east', container: 'images', blob: `app/${v}/app.ova` },
    blockSize: BLOCK,
    blockCount: digests.length,
    metadata,
    replicas: [],
  } as unknown as ImageVersionRecord;
  const blocks: Block[] = digests.map((d, i) => ({
    name: blockId(i, digest(d)),
    size: Math.min(BLOCK, sizeBytes - i * BLOCK),
  }));
  return { record, blocks };
}

/** Deps whose catalog holds the versions given and whose storage holds their committed block lists. */
function depsOf(versions: Array<ReturnType<typeof version>>, withStorage = true): CliDeps {
  const catalog = {
    versions: {
      resolve: async (image: string, v: string) =>
        versions.find((x) => x.record.image === image && x.record.version === v)?.record,
      find: async () => versions.map((x) => x.record),
      images: async () => ['app'],
    },
  } as unknown as Catalog;
  const storage = {
    store: () => ({
      committedBlocks: async (blob: string) => versions.find((x) => x.record.location.blob === blob)!.blocks,
    }),
  } as unknown as BlockStores;
  return {
    config: loadConfig(),
    catalog: async () => catalog,
    temporal: () => Promise.reject(new Error('Temporal must not be reached')),
    ...(withStorage ? { storage: () => storage } : {}),
    io: capture(),
  };
}

const ref = (v: string) => ({ image: 'app', version: v });

describe('vmhub diff', () => {
  const a = version('1.0.0', [1, 2, 3, 4], { cpus: 2, networks: ['VM Network'] });
  const b = version('1.0.1', [1, 2, 9, 4, 5], { cpus: 4, networks: ['VM Network', 'mgmt'] }, 18);

  it('counts the blocks and bytes of b a holder of a already has, by digest', async () => {
    const r = await diff.run({ a: ref('1.0.0'), b: ref('1.0.1') }, depsOf([a, b]));
    expect(r.blocks).toEqual({ sharedBlocks: 3, blockCount: 5, sharedBytes: 12, sizeBytes: 18 });
    expect(r.identical).toBe(false);
    expect(r.metadata.hardware).toEqual([{ field: 'cpus', a: 2, b: 4 }]);
    expect(diff.renderText(r)).toEqual([
      'a  app@1.0.0  available  ova  16 B',
      'b  app@1.0.1  available  ova  18 B',
      `sha256         a ${a.record.sha256}`,
      `               b ${b.record.sha256}`,
      'hardware       ~ CPUs: 2 → 4',
      '               (5 other fields alike)',
      'disks          same (1 disk)',
      'networks       + mgmt',
      '               (1 other network alike)',
      'properties     same (0 properties)',
      'blocks shared  3 of 5 blocks of app@1.0.1 (60.0 %, 12 B of 18 B) are already held by a holder of app@1.0.0',
    ]);
  });

  it('says why the blocks shared are not known: a version not available, or no storage', async () => {
    const retired = version('0.9.0', [1], { cpus: 2 });
    (retired.record as { status: string }).status = 'retired';
    const r = await diff.run({ a: ref('0.9.0'), b: ref('1.0.0') }, depsOf([retired, a]));
    expect(r.blocks).toEqual({ unknown: 'app@0.9.0 is retired, so its blob is not read' });
    const none = await diff.run({ a: ref('1.0.0'), b: ref('1.0.1') }, depsOf([a, b], false));
    expect(diff.renderText(none)).toContain('blocks shared  not known: this CLI has no storage access');
  });

  it('says the properties were not recorded for a version published before they were kept', async () => {
    const old = version('0.1.0', [1], undefined);
    const r = await diff.run({ a: ref('0.1.0'), b: ref('1.0.0') }, depsOf([old, a]));
    expect(diff.renderText(r)).toContain('properties     not recorded for a (published before vmhub kept them)');
  });

  it('refuses an unknown version with UnknownImage, naming the available ones', async () => {
    await expect(diff.run({ a: ref('1.0.0'), b: ref('2.0.0') }, depsOf([a]))).rejects.toMatchObject({
      type: 'UnknownImage',
      message: 'app@2.0.0 is not in the catalog; available versions: 1.0.0',
    });
  });
});
