import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { blockIndexFromBlockList, blockIndexPath, localBases, parseBlockIndex } from '../../src/deploy/block-index';
import { blockId } from '../../src/storage/block-ids';

const d = (n: number) => n.toString(16).padStart(32, '0');
const sha = 'b'.repeat(64);

describe('blockIndexFromBlockList', () => {
  it('reads the block size and each digest from the committed IDs', () => {
    const blocks = [
      { name: blockId(0, d(1)), size: 8 },
      { name: blockId(1, d(2)), size: 8 },
      { name: blockId(2, d(3)), size: 3 },
    ];
    expect(blockIndexFromBlockList(blocks, { sha256: sha, sizeBytes: 19 })).toEqual({
      sha256: sha,
      sizeBytes: 19,
      blockSize: 8,
      digests: [d(1), d(2), d(3)],
    });
  });

  it.each([
    ['an ID that is not index-and-digest', [{ name: Buffer.from('foreign').toString('base64'), size: 8 }], 8],
    ['IDs out of order', [{ name: blockId(1, d(1)), size: 8 }], 8],
    [
      'a short block before the last',
      [
        { name: blockId(0, d(1)), size: 4 },
        { name: blockId(1, d(2)), size: 8 },
      ],
      12,
    ],
    ['sizes that do not add up to the image', [{ name: blockId(0, d(1)), size: 8 }], 9],
    ['no block at all', [], 0],
  ])('gives no index for %s', (_what, blocks, sizeBytes) => {
    expect(blockIndexFromBlockList(blocks, { sha256: sha, sizeBytes })).toBeUndefined();
  });
});

describe('parseBlockIndex', () => {
  const good = { sha256: sha, sizeBytes: 10, blockSize: 4, digests: [d(1), d(2), d(3)] };

  it('accepts a consistent index', () => {
    expect(parseBlockIndex(JSON.stringify(good))).toEqual(good);
  });

  it.each([
    ['not JSON', '{'],
    ['a digest count that does not match the size', JSON.stringify({ ...good, digests: [d(1)] })],
    ['a malformed digest', JSON.stringify({ ...good, digests: [d(1), d(2), 'xyz'] })],
    ['a zero block size', JSON.stringify({ ...good, blockSize: 0 })],
    ['null', 'null'],
  ])('refuses %s', (_what, text) => {
    expect(parseBlockIndex(text)).toBeUndefined();
  });
});

describe('localBases', () => {
  let root: string;
  beforeEach(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'vmhub-bases-'));
  });
  afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

  function deployed(version: string, opts: { size?: number; digest?: string } = {}): string {
    const dir = path.join(root, 'img', version);
    fs.mkdirSync(dir, { recursive: true });
    const file = path.join(dir, `img-${version}.iso`);
    fs.writeFileSync(file, Buffer.alloc(opts.size ?? 10));
    fs.writeFileSync(`${file}.sha256`, `${opts.digest ?? sha}  img-${version}.iso\n`);
    fs.writeFileSync(
      blockIndexPath(file),
      JSON.stringify({ sha256: sha, sizeBytes: 10, blockSize: 4, digests: [d(1), d(2), d(3)] }),
    );
    return file;
  }

  it('finds the other versions whose file matches its index and digest file, and no other', async () => {
    const good = deployed('1.0.0');
    deployed('1.0.1'); // the version being deployed
    deployed('0.9.0', { size: 11 }); // not the size its index says
    deployed('0.8.0', { digest: 'c'.repeat(64) }); // other bytes than the index describes
    fs.mkdirSync(path.join(root, 'elsewhere'));
    fs.symlinkSync(path.join(root, 'elsewhere'), path.join(root, 'img', '0.7.0')); // a link is never followed
    const bases = await localBases(root, 'img', '1.0.1');
    expect(bases.map((b) => [b.version, b.file])).toEqual([['1.0.0', good]]);
    expect(bases[0].index.digests).toEqual([d(1), d(2), d(3)]);
  });

  it('finds nothing for an image the datastore does not hold', async () => {
    expect(await localBases(root, 'other', '1.0.0')).toEqual([]);
  });
});
