import { createHash, generateKeyPairSync } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openDeployment } from '../../src/datastore/layout';
import { downloadFromSources, NoSourceDelivered, type DownloadContext, type WrittenFollower } from '../../src/deploy/download';
import type { DownloadInput, SourceFailure } from '../../src/deploy/download-request';
import { CHUNK } from '../../src/deploy/partial-state';
import { keyIdOf } from '../../src/provenance/keys';
import { VmhubError } from '../../src/shared/errors';
import { blockDigest, blockId } from '../../src/storage/block-ids';
import type { BlockStores } from '../../src/storage/block-store';
import { MemoryBlockStore } from '../../src/storage/memory-block-store';
import type { Topology } from '../../src/topology/topology';
import { signAsPublished } from '../harness/committed-blocks';
import { filler } from '../images/build';

/**
 * A download followed by a streamed import (src/deploy/download.ts), on a memory store: what the follower
 * makes of the bytes (an archive it cannot split) waits for their SHA-256 verdict, so bytes that do not
 * verify are judged as such; any other failure of it (an upload refused) ends the attempt at once; and over
 * bytes that verify, its failure stands.
 */
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const image = filler(Math.floor(2.5 * CHUNK), 5);
const blob = 'img/1.0.0/img-1.0.0.iso';

let root: string;
beforeEach(() => (root = fs.mkdtempSync(path.join(os.tmpdir(), 'vmhub-download-follower-'))));
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

/** Downloads the version from a store holding `bytes`, signed as `image`, one chunk at a time, followed by `follower`. */
async function download(bytes: Buffer, follower: WrittenFollower) {
  const store = new MemoryBlockStore();
  await store.createContainer();
  const ids: string[] = [];
  for (let i = 0; i * CHUNK < bytes.length; i++) {
    const block = bytes.subarray(i * CHUNK, (i + 1) * CHUNK);
    ids.push(blockId(i, await blockDigest(block)));
    await store.stageBlock(blob, ids[i], block);
  }
  await store.commitBlocks(blob, ids, { metadata: { sha256: sha(image) } });
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const version = { image: 'img', version: '1.0.0', sha256: sha(image), sizeBytes: image.length };
  await signAsPublished(store, blob, version, undefined, privateKey);
  const storage: BlockStores = { topology: {} as Topology, store: () => store, ensureContainers: async () => undefined };
  const ctx: DownloadContext = {
    storage,
    root,
    concurrency: 1,
    signal: new AbortController().signal,
    onProgress: () => undefined,
    log: { info: () => undefined, warn: () => undefined },
    trusted: [{ keyid: keyIdOf(publicKey), publicKey }],
    attempt: 1,
    follow: () => Promise.resolve(follower),
  };
  const input: DownloadInput = {
    ...version,
    format: 'iso',
    sddc: 'sddc-1',
    blob,
    sources: [{ location: 'east-primary', dataCenter: 'dc-east', role: 'primary' }],
  };
  const failures: SourceFailure[] = [];
  return downloadFromSources(ctx, input, await openDeployment(root, input), failures);
}

/** A follower that fails with `err` once the file holds more than `after` bytes; it hands nothing to the verifier. */
function failingFollower(err: Error, after: number): WrittenFollower & { at?: number } {
  let fail!: (e: Error) => void;
  const done = new Promise<void>((_resolve, reject) => (fail = reject));
  const follower: WrittenFollower & { at?: number } = {
    done,
    advanceTo: (bytes) => {
      if (bytes > after && follower.at === undefined) {
        follower.at = bytes;
        fail(err);
      }
    },
  };
  done.catch(() => undefined);
  return follower;
}

it('a follower that cannot split the bytes during the fill waits for their SHA-256: bytes that do not verify fail the source', async () => {
  const bad = Buffer.from(image);
  bad[2 * CHUNK + 3] ^= 0xff;
  const follower = failingFollower(new VmhubError('InvalidImage', 'archive is corrupt: a header that fails its checksum'), 0);
  const failed = download(bad, follower);
  await expect(failed).rejects.toBeInstanceOf(NoSourceDelivered);
  await expect(failed).rejects.toThrow(/east-primary yielded bytes with SHA-256 [0-9a-f]{64}, expected/);
  // It failed with the first chunk written, two more still to come.
  expect(follower.at).toBe(CHUNK);
});

it('a follower whose upload was refused ends the attempt at once, with its error', async () => {
  const follower = failingFollower(new Error('upload of img-1.0.0.iso refused: 500'), 0);
  await expect(download(image, follower)).rejects.toThrow('upload of img-1.0.0.iso refused: 500');
  expect(follower.at).toBe(CHUNK);
});

it('over bytes that verify, a follower that failed after the fill fails the attempt with its own error', async () => {
  const follower = failingFollower(new VmhubError('InvalidImage', 'the archive holds no member img.ovf'), image.length - 1);
  await expect(download(image, follower)).rejects.toThrow('the archive holds no member img.ovf');
  expect(follower.at).toBe(image.length);
});
