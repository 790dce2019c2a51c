import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import type { Provenance } from '../../src/provenance/statement';
import { ContentLibrary } from '../../src/sddc/content-library';
import type { VcenterConnection } from '../../src/sddc/library-import';
import { StreamedImport } from '../../src/sddc/library-stream';
import { isShared } from '../../src/storage/block-buffers';
import type { RestCall } from '../../src/sddc/vsphere-rest';
import type { ImageVersion } from '../../src/shared/image-version';
import { itemDescription } from '../../src/shared/target-kinds/content-library';

/**
 * A streamed content-library import against a stand-in vCenter: every byte sent is handed to the
 * download's verifier first, from the same memory; a failed upload ends the attempt while it still waits
 * for the download, the activity's cancel reaches an upload the end of the stream waits on, and a download
 * that ended without a verified fetch fails the session and leaves the import to the verified copy.
 */
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const bytes = Buffer.alloc(64 * 1024, 7);

type Upload = (body: Readable, call: RestCall) => Promise<void>;

let dir: string;
let partial: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmhub-library-stream-'));
  partial = path.join(dir, 'img-1.0.0.iso.partial');
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

/** An import of an ISO whose item is new, each upload answered by `upload`; what the vCenter was told is recorded. */
async function streamed(
  upload: Upload,
  activity: AbortSignal,
  { image = bytes, verify }: { image?: Buffer; verify?: (b: Buffer) => Promise<void> } = {},
) {
  const verified = sha(image);
  fs.writeFileSync(partial, image);
  const ref: ImageVersion = { image: 'img', version: '1.0.0', format: 'iso', sha256: verified, sizeBytes: image.length };
  const told = { calls: [] as RestCall[], failed: [] as Array<[string, string]> };
  // The library's own methods (findOrCreateItem, uploadEndpoint) over these stand-in calls.
  const library = Object.assign(Object.create(ContentLibrary.prototype) as ContentLibrary, {
    findLibrary: () => Promise.resolve({ id: 'lib' }),
    findItem: () =>
      Promise.resolve({ id: 'item', name: 'img-1.0.0', description: itemDescription('img', '1.0.0', verified, true) }),
    updateSessionsOf: () => Promise.resolve([]),
    createUpdateSession: () => Promise.resolve('session-1'),
    sessionFiles: () => Promise.resolve([]),
    itemFiles: () => Promise.resolve([]),
    addFile: (_session: string, file: { name: string }) => Promise.resolve({ upload_endpoint: { uri: `/upload/${file.name}` } }),
    fail: (id: string, reason: string) => Promise.resolve(void told.failed.push([id, reason])),
    rest: {
      startUpload: (_endpoint: string, _size: number, _what: string, call: RestCall) => {
        told.calls.push(call);
        const body = new PassThrough();
        const writer = { write: (b: Uint8Array) => void body.write(b), end: () => body.end(), drained: () => Promise.resolve() };
        return { upload: writer, sent: upload(body, call) };
      },
    },
  });
  const conn = { target: { library: 'lib', vcenter: 'https://vc.test/' }, library } as unknown as VcenterConnection;
  const importer = (await StreamedImport.open(conn, ref, activity, () => undefined))!;
  const provenance = { sha256: verified, sizeBytes: image.length, members: [] } as unknown as Provenance;
  const handed: Buffer[] = [];
  const follower = await importer.follow(partial, provenance, verify ?? ((b) => Promise.resolve(void handed.push(b))));
  return { importer, follower, told, handed };
}

/** Takes the body until the signal ends the upload, as an HTTP request bound to it does. */
const untilAborted: Upload = (body, call) =>
  new Promise((_resolve, reject) => {
    body.resume();
    call.signal!.addEventListener('abort', () => reject(call.signal!.reason as Error), { once: true });
  });

it('a failed upload ends the attempt while it still waits for the download, with the upload’s error', async () => {
  const { follower, told } = await streamed(
    () => Promise.reject(new Error('upload of img-1.0.0.iso refused: 500')),
    new AbortController().signal,
  );
  // Not a byte landed: the follower waits for the download, which its failure is to stop.
  follower.advanceTo(0);
  await expect(follower.done).rejects.toThrow('upload of img-1.0.0.iso refused: 500');
  // A streamed upload waits on the download: it is allowed a long idle, and is bound to a signal.
  expect(told.calls[0].idleTimeoutMs).toBeGreaterThanOrEqual(30 * 60_000);
  expect(told.calls[0].signal).toBeInstanceOf(AbortSignal);
});

it('the activity’s cancel reaches an upload that the end of the stream waits on', async () => {
  const activity = new AbortController();
  const { importer, follower, told } = await streamed(untilAborted, activity.signal);
  follower.advanceTo(bytes.length);
  const finished = importer.finish(true);
  activity.abort(new Error('the activity was cancelled'));
  await expect(finished).rejects.toThrow('the activity was cancelled');
  expect(told.calls[0].signal!.aborted).toBe(true);
});

it('the activity’s cancel ends the wait for bytes the download has not written', async () => {
  const activity = new AbortController();
  const { follower } = await streamed(untilAborted, activity.signal);
  follower.advanceTo(bytes.length / 2);
  activity.abort(new Error('the activity was cancelled'));
  await expect(follower.done).rejects.toThrow('the activity was cancelled');
});

it('hands every byte it sends to the verifier first, in order, on shared memory the hashing thread reads in place', async () => {
  const sent: Buffer[] = [];
  const takeAll: Upload = (body) => new Promise((resolve) => body.on('data', (b: Buffer) => sent.push(b)).on('end', resolve));
  const { follower, told, handed } = await streamed(takeAll, new AbortController().signal);
  follower.advanceTo(bytes.length / 4);
  follower.advanceTo(bytes.length);
  await follower.done;
  expect(Buffer.concat(handed).equals(bytes)).toBe(true);
  expect(Buffer.concat(sent).equals(bytes)).toBe(true);
  expect(handed.every((b) => isShared(b))).toBe(true);
  expect(told.failed).toEqual([]);
});

it('holds no more than a few chunks the verifier has not taken in: the hashing thread sets the pace', async () => {
  const image = Buffer.alloc(10 * 4 * 1024 * 1024, 3);
  const takeAll: Upload = (body) => new Promise((resolve) => body.resume().on('end', resolve));
  const waiting: Array<() => void> = [];
  const verify = () => new Promise<void>((resolve) => waiting.push(resolve));
  const { follower } = await streamed(takeAll, new AbortController().signal, { image, verify });
  let settled = false;
  follower.done.then(
    () => (settled = true),
    () => (settled = true),
  );
  const turns = async (n: number) => {
    for (let i = 0; i < n; i++) await new Promise((resolve) => setTimeout(resolve, 5));
  };
  follower.advanceTo(image.length);
  for (let i = 0; i < 400 && waiting.length < 4 && !settled; i++) await turns(1);
  await turns(20);
  // Three chunks ahead of the verifier, and the fourth, read, waits for the first to be taken in.
  expect(waiting).toHaveLength(4);
  for (let i = 0; i < 400 && !settled; i++) {
    waiting.forEach((resolve) => resolve());
    await turns(1);
  }
  await follower.done;
  expect(waiting).toHaveLength(10);
});

it('a download that ended without a verified fetch (its copy found on disk) fails the session: the verified copy goes instead', async () => {
  const takeAll: Upload = (body) => new Promise((resolve) => body.resume().on('end', resolve));
  const { importer, told } = await streamed(takeAll, new AbortController().signal);
  await expect(importer.finish(false)).resolves.toBeUndefined();
  expect(told.failed).toEqual([['session-1', 'the download ended without verifying the bytes sent']]);
});
