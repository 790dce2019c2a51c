import { execFileSync } from 'node:child_process';
import { createHash, generateKeyPairSync, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ActivityCancellationDetails, ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { createAgentActivities, type DownloadInput, type DownloadOutput } from '../src/activities/agent';
import { loadConfig } from '../src/config';
import { signStatement } from '../src/provenance/statement';
import { envelopeBlobOf, writeStoredEnvelope } from '../src/provenance/stored';
import { TopologyBlockStores } from '../src/storage/backends';
import type { BlockStores } from '../src/storage/block-store';
import { loadTopology } from '../src/topology/topology';
import { startCountingProxy, type CountingProxy } from './harness/counting-proxy';
import { until } from './harness/worker-process';
import { filler } from './images/build';
import { makeTestPki, smallOva } from './images/pki';
import { signBeside } from './harness/signing';
import { createInspector } from '../src/images/inspect';

/**
 * The SDDC agent's download activity against the real Azurite, run in an activity context of the SDK's
 * testing package so a test can cancel it at a chosen moment: the lock on a target, cancellation, free
 * space, verification failures and links in the datastore.
 */
const MiB = 2 ** 20;
const config = { ...loadConfig(), transferConcurrency: 2 };
const storage: BlockStores = new TopologyBlockStores(loadTopology(config.topologyPath));
const logger = new DefaultLogger('ERROR');
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'agent-downloads-'));

/** A tiny filesystem, to run out of space on; mounting needs root, so without it that test is skipped. */
const smallDisk = path.join(work, 'small');
fs.mkdirSync(smallDisk);
const mounted = (() => {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', smallDisk], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

let proxy: CountingProxy;
let slowStorage: BlockStores;

beforeAll(async () => {
  await storage.ensureContainers();
  proxy = await startCountingProxy(Number(process.env.AZURITE_DC_EAST_PORT), 1000);
  slowStorage = new TopologyBlockStores(
    loadTopology(config.topologyPath, { ...process.env, AZURITE_DC_EAST_PORT: String(proxy.port) }),
  );
});
afterAll(async () => {
  await proxy.close();
  if (mounted) execFileSync('umount', [smallDisk]);
  fs.rmSync(work, { recursive: true, force: true });
});

/** Every member of an OVA with its SHA-256, as a publish's inspection signs them; none of bytes that are no OVA. */
async function ovaMembers(bytes: Buffer): Promise<Array<{ name: string; sha256: string; size: number }>> {
  const inspector = createInspector('ova');
  const metadata = await inspector
    .write(bytes)
    .then(() => inspector.finish())
    .catch(() => undefined);
  if (metadata?.kind !== 'ova') return [];
  return metadata.archive.files.map((f) => ({ name: f.name, sha256: f.sha256!, size: f.size }));
}

/** A blob in the primary storage as a publish leaves it, and the input that deploys it to east-1. */
async function published(
  sizeBytes: number,
  format: DownloadInput['format'] = 'iso',
  bytes = filler(sizeBytes, sizeBytes % 251),
): Promise<DownloadInput & { bytes: Buffer }> {
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const version = `1.0.${Math.floor(Math.random() * 1e6)}`;
  const blob = `agent-test/${version}/agent-test-${version}.${format}`;
  await storage.store('east-primary').upload(blob, bytes, { metadata: { sha256 } });
  const members = format === 'ova' ? await ovaMembers(bytes) : [];
  await signBeside(storage.store('east-primary'), blob, { image: 'agent-test', version, format, sha256, sizeBytes, members });
  return {
    bytes,
    sddc: 'east-1',
    image: 'agent-test',
    version,
    format,
    sha256,
    sizeBytes,
    blob,
    sources: [{ location: 'east-primary', dataCenter: 'dc-east', role: 'primary' }],
  };
}

function agent(datastore: string, clients = storage) {
  return createAgentActivities({ storage: clients, config: { ...config, datastore }, sddc: 'east-1' });
}

function run(activities: ReturnType<typeof agent>, input: DownloadInput) {
  const env = new MockActivityEnvironment({ activityId: randomUUID() }, { logger });
  const heartbeats: Array<{ bytesDone: number }> = [];
  env.on('heartbeat', (d: { bytesDone: number }) => heartbeats.push(d));
  return { env, heartbeats, done: env.run(activities.downloadImage, input) as Promise<DownloadOutput> };
}

const failureOf = (p: Promise<unknown>) =>
  p.then(
    () => {
      throw new Error('expected the download to fail');
    },
    (err: unknown) => err,
  );

const versionDir = (root: string, input: DownloadInput) => path.join(root, input.image, input.version);
const fileName = (input: DownloadInput) => `${input.image}-${input.version}.${input.format === 'iso' ? 'iso' : 'ova'}`;

it('deploys the verified bytes with their digest beside them, then finds them already present', async () => {
  const root = path.join(work, 'plain');
  const input = await published(20 * MiB);
  const out = await run(agent(root), input).done;
  expect(out).toMatchObject({ status: 'deployed', source: 'east-primary', bytesFetched: input.sizeBytes, bytesResumed: 0 });
  expect(out.path).toBe(path.join(fs.realpathSync(root), input.image, input.version, fileName(input)));
  expect(fs.readFileSync(out.path).equals(input.bytes)).toBe(true);
  expect(fs.readdirSync(versionDir(root, input)).sort()).toEqual([
    fileName(input),
    `${fileName(input)}.dsse.json`,
    `${fileName(input)}.sha256`,
  ]);
  expect(fs.readFileSync(`${out.path}.sha256`, 'utf8')).toBe(`${input.sha256}  ${fileName(input)}\n`);
  expect(await run(agent(root), input).done).toMatchObject({ status: 'already-present', bytesFetched: 0 });
});

it('lets one download write a target at a time: a second one fails retryably and the first completes intact', async () => {
  const root = path.join(work, 'locked');
  const input = await published(48 * MiB);
  const lock = path.join(versionDir(root, input), `.${fileName(input)}.lock`);
  const first = run(agent(root, slowStorage), input);
  await until('the first download holding the lock', () => fs.existsSync(lock));
  const second = await failureOf(run(agent(root), input).done);
  expect(second).toBeInstanceOf(ApplicationFailure);
  expect(second).toMatchObject({ type: 'DownloadInProgress', nonRetryable: false });
  expect((second as Error).message).toMatch(new RegExp(`being used by pid ${process.pid}`));
  const out = await first.done;
  expect(out.status).toBe('deployed');
  expect(fs.readFileSync(out.path).equals(input.bytes)).toBe(true);
  expect(fs.existsSync(lock)).toBe(false);
  expect(await run(agent(root), input).done).toMatchObject({ status: 'already-present' });
});

it('takes over the lock of an agent that died, and resumes its download', async () => {
  const root = path.join(work, 'dead-holder');
  const input = await published(40 * MiB);
  const dir = versionDir(root, input);
  const name = fileName(input);
  // What an agent killed mid-download leaves behind: a partial file, its checkpoint and its lock.
  const killed = run(agent(root, slowStorage), input);
  const state = path.join(dir, `.${name}.partial.json`);
  // The checkpoint is rewritten in place, so a read may catch it half-written.
  await until('a chunk checkpointed on disk', () =>
    /"doneBelow":[1-9]/.test(fs.existsSync(state) ? fs.readFileSync(state, 'utf8') : ''),
  );
  killed.env.cancel('WORKER_SHUTDOWN', new ActivityCancellationDetails({ workerShutdown: true }));
  expect(await failureOf(killed.done)).toBeInstanceOf(CancelledFailure);
  const deadPid = execFileSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  fs.writeFileSync(path.join(dir, `.${name}.lock`), JSON.stringify({ pid: Number(deadPid), process: 'x', activityId: '1' }));

  const resumed = run(agent(root), input);
  const out = await resumed.done;
  expect(out.status).toBe('deployed');
  expect(out.bytesResumed).toBeGreaterThan(0);
  expect(out.bytesFetched).toBe(input.sizeBytes - out.bytesResumed);
  expect(fs.readFileSync(out.path).equals(input.bytes)).toBe(true);
  // What is on disk is verified on a hashing thread while the rest is fetched: progress starts from it.
  expect(resumed.heartbeats.length).toBeGreaterThan(0);
  expect(resumed.heartbeats.every((h) => h.bytesDone >= out.bytesResumed)).toBe(true);
  expect(fs.readdirSync(dir).sort()).toEqual([name, `${name}.dsse.json`, `${name}.sha256`]);
});

it('on a cancel the workflow asked for, stops and removes its partial file, checkpoint and lock', async () => {
  const root = path.join(work, 'cancelled');
  const input = await published(48 * MiB);
  const dir = versionDir(root, input);
  const download = run(agent(root, slowStorage), input);
  await until('a checkpoint on disk', () => fs.existsSync(path.join(dir, `.${fileName(input)}.partial.json`)));
  expect(fs.readdirSync(dir).some((f) => f.endsWith('.partial'))).toBe(true);
  download.env.cancel();
  expect(await failureOf(download.done)).toBeInstanceOf(CancelledFailure);
  expect(fs.readdirSync(dir)).toEqual([]);
});

it('keeps what it downloaded when the cancel comes from its worker shutting down', async () => {
  const root = path.join(work, 'shutdown');
  const input = await published(48 * MiB);
  const dir = versionDir(root, input);
  const name = fileName(input);
  const download = run(agent(root, slowStorage), input);
  await until('a checkpoint on disk', () => fs.existsSync(path.join(dir, `.${name}.partial.json`)));
  download.env.cancel('WORKER_SHUTDOWN', new ActivityCancellationDetails({ workerShutdown: true }));
  expect(await failureOf(download.done)).toBeInstanceOf(CancelledFailure);
  expect(fs.readdirSync(dir).sort()).toEqual([`.${name}.partial`, `.${name}.partial.json`]);
});

(mounted ? it : it.skip)('refuses a download its filesystem has no room for, non-retryably, leaving nothing', async () => {
  const input = await published(16 * MiB);
  const err = await failureOf(run(agent(smallDisk), input).done);
  expect(err).toBeInstanceOf(ApplicationFailure);
  expect(err).toMatchObject({ type: 'InsufficientSpace', nonRetryable: true });
  expect((err as Error).message).toMatch(/has [\d.]+ MiB free; the download needs 16.0 MiB more/);
  expect(fs.readdirSync(versionDir(smallDisk, input))).toEqual([]);
});

it('fails an image whose verified bytes are no valid OVA as InvalidImage, non-retryably, and drops the partial file', async () => {
  const root = path.join(work, 'invalid');
  const input = await published(9 * MiB, 'ova');
  const err = await failureOf(run(agent(root), input).done);
  expect(err).toMatchObject({ type: 'InvalidImage', nonRetryable: true });
  expect(fs.readdirSync(versionDir(root, input))).toEqual([]);
});

it('with its own OVF policy, refuses as PolicyRefused what its own inspection finds untrusted or without a manifest, also a copy already present', async () => {
  const pki = makeTestPki();
  const caFile = path.join(work, 'trusted-cas.pem');
  fs.writeFileSync(caFile, pki.trustedRoot);
  const root = path.join(work, 'policy');
  const ovf = { trustedCaFile: caFile, requireManifest: true, requireVerifiedCertificate: true };
  const strict = createAgentActivities({ storage, config: { ...config, datastore: root, ovf }, sddc: 'east-1' });
  const publishedOva = (bytes: Buffer) => published(bytes.length, 'ova', bytes);

  const untrusted = await publishedOva(smallOva({ signer: pki.untrusted }));
  const refused = await failureOf(run(strict, untrusted).done);
  expect(refused).toMatchObject({ type: 'PolicyRefused', nonRetryable: true });
  expect((refused as Error).message).toMatch(
    /^the agent of east-1 requires a verified OVF certificate, and the image's is untrusted/,
  );
  expect(fs.readdirSync(versionDir(root, untrusted))).toEqual([]);

  const trusted = await publishedOva(smallOva({ signer: pki.trusted }));
  expect(await run(strict, trusted).done).toMatchObject({ status: 'deployed' });

  // Deployed by an agent without the policy, then asked of one with it: the copy's bytes are judged again.
  const unlisted = await publishedOva(smallOva({ manifest: false }));
  expect(await run(agent(root), unlisted).done).toMatchObject({ status: 'deployed' });
  const present = await failureOf(run(strict, unlisted).done);
  expect(present).toMatchObject({
    type: 'PolicyRefused',
    message: 'the agent of east-1 requires a manifest, and the image has none',
  });
});

it('refuses names it did not check itself as InvalidInput, and creates nothing', async () => {
  const root = path.join(work, 'names');
  const input = await published(1 * MiB);
  for (const bad of [{ image: '..' }, { version: '../../../tmp' }, { sddc: 'west-1' }]) {
    const err = await failureOf(run(agent(root), { ...input, ...bad }).done);
    expect(err).toMatchObject({ type: 'InvalidInput', nonRetryable: true });
  }
  expect(fs.existsSync(root)).toBe(false);
});

it('does not follow a link planted at the partial file, and leaves its target alone', async () => {
  const root = path.join(work, 'planted');
  const input = await published(12 * MiB);
  const dir = versionDir(root, input);
  const victim = path.join(work, 'victim');
  fs.writeFileSync(victim, 'keep me');
  fs.mkdirSync(dir, { recursive: true });
  fs.symlinkSync(victim, path.join(dir, `.${fileName(input)}.partial`));
  const out = await run(agent(root), input).done;
  expect(out.status).toBe('deployed');
  expect(fs.readFileSync(victim, 'utf8')).toBe('keep me');
  expect(fs.lstatSync(out.path).isFile()).toBe(true);
});

const pick = <T, K extends keyof T>(o: T, ...keys: K[]) => Object.fromEntries(keys.map((k) => [k, o[k]])) as Pick<T, K>;

describe('signed provenance: the agent reads it from the source, checks it with its own keys, and refuses before any rename', () => {
  /** A refused download leaves the version's folder empty: nothing renamed into place, no partial file. */
  async function refused(root: string, input: DownloadInput, type: string, reason: RegExp): Promise<void> {
    const err = await failureOf(run(agent(root), input).done);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect(err).toMatchObject({ type, nonRetryable: true });
    expect((err as Error).message).toMatch(reason);
    expect(fs.readdirSync(versionDir(root, input))).toEqual([]);
  }

  it('refuses a catalog edit of the SHA-256 (to another file) or of the blob path (to another version)', async () => {
    const root = path.join(work, 'catalog-edits');
    const input = await published(1 * MiB);
    const other = await published(2 * MiB);
    const { bytes: _bytes, ...task } = input;
    await refused(root, { ...task, sha256: other.sha256 }, 'ProvenanceMismatch', /the signed statement says [0-9a-f]{64}/);
    await refused(
      root,
      { ...task, blob: other.blob, sha256: other.sha256, sizeBytes: other.sizeBytes },
      'ProvenanceMismatch',
      new RegExp(`statement is of agent-test@${other.version}, not agent-test@${input.version}`),
    );
  });

  it('refuses a version whose envelope was removed, and one signed by a key it does not trust', async () => {
    const root = path.join(work, 'unsigned');
    const unsigned = await published(1 * MiB);
    await storage.store('east-primary').deleteIfExists(envelopeBlobOf(unsigned.blob));
    await refused(root, unsigned, 'UnsignedImage', /dsse\.json is missing/);

    const forged = await published(1 * MiB);
    const envelope = signStatement(
      {
        ...pick(forged, 'image', 'version', 'format', 'sha256', 'sizeBytes'),
        members: [],
        source: 'x',
        run: { workflowId: 'w', runId: 'r' },
        publishedAt: new Date().toISOString(),
      },
      generateKeyPairSync('ed25519').privateKey,
    );
    await writeStoredEnvelope(storage.store('east-primary'), forged.blob, envelope);
    await refused(root, forged, 'UntrustedSignature', /no signature verifies with a trusted key/);
  });

  it('does not report present a copy whose bytes changed while its .sha256 file was left alone: it downloads it again', async () => {
    const root = path.join(work, 'edited-copy');
    const input = await published(2 * MiB);
    const first = await run(agent(root), input).done;
    const sidecar = fs.readFileSync(`${first.path}.sha256`, 'utf8');
    const fd = fs.openSync(first.path, 'r+');
    fs.writeSync(fd, Buffer.from('edited outside vmhub'), 0, undefined, 4096);
    fs.closeSync(fd);
    expect(fs.readFileSync(`${first.path}.sha256`, 'utf8')).toBe(sidecar);
    const again = await run(agent(root), input).done;
    expect(again).toMatchObject({ status: 'deployed', bytesFetched: input.sizeBytes });
    expect(fs.readFileSync(again.path).equals(input.bytes)).toBe(true);
  });
});
