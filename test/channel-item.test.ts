import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { createChannelItemActivities, type ChannelItemInput, type ChannelItemOutput } from '../src/activities/channel-item';
import { loadConfig } from '../src/config';
import { acquireLock, releaseLock } from '../src/datastore/locks';
import type { Envelope } from '../src/provenance/dsse';
import { loadSigningKey, loadTrustedKeys } from '../src/provenance/keys';
import { signStatement } from '../src/provenance/statement';
import { channelDescription } from '../src/sddc/channel-item';
import { verifyItem } from '../src/sddc/item-check';
import { importImage, VcenterConnection } from '../src/sddc/library-import';
import type { ImageVersion } from '../src/shared/image-version';
import type { ContentLibraryTarget } from '../src/shared/target-kinds/kind';
import { loadTopology } from '../src/topology/topology';
import { agentVcenterEnv, itemDigests, testVcenter } from './harness/vcenter';
import { ovaFromDescriptor, type Member } from './images/build';

/**
 * The agent's channel activity against the embedded vcsim of east-1, run in an activity context of the
 * SDK's testing package: versions imported as their own items, then one channel item pointed at each in turn.
 */
const config = loadConfig();
const logger = new DefaultLogger('ERROR');
const run = randomUUID().slice(0, 6);
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'channel-item-'));
const seed = loadTopology(config.topologyPath).sddcs.find((s) => s.name === 'east-1')!;
const target: ContentLibraryTarget = { ...(seed.target as ContentLibraryTarget), library: `channels-${run}` };
const login = { username: 'vmhub-agent', password: `pw-${run}` };
const trusted = loadTrustedKeys(config.trustedKeys);
const activities = createChannelItemActivities({
  config: { ...config, datastore: work },
  sddc: 'east-1',
  env: agentVcenterEnv(target.vcenter, login),
  trusted,
});
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

const DESCRIPTOR = `<?xml version="1.0"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
  <References><File ovf:href="edge-disk1.vmdk" ovf:id="f1"/></References>
  <DiskSection><Info/><Disk ovf:diskId="d1" ovf:fileRef="f1" ovf:capacity="1" ovf:capacityAllocationUnits="byte * 2^30"/></DiskSection>
  <VirtualSystem ovf:id="edge"><Info/><ProductSection><Info/><Version>VERSION</Version></ProductSection></VirtualSystem>
</Envelope>`;

interface Version {
  ref: ImageVersion;
  members: Member[];
  envelope: Envelope;
  itemId: string;
}

let conn: VcenterConnection;
const versions = new Map<string, Version>();

/** A small OVA of `edge@version`, signed as a publish signs it, imported as its own library item. */
async function imported(version: string, diskBytes: number, descriptorName = 'edge.ovf'): Promise<Version> {
  const file = path.join(work, `edge-${version}.ova`);
  const { members } = ovaFromDescriptor(file, DESCRIPTOR.replace('VERSION', version), { fileSize: diskBytes, descriptorName });
  const bytes = fs.readFileSync(file);
  const ref: ImageVersion = { image: 'edge', version, format: 'ova', sha256: sha(bytes), sizeBytes: bytes.length };
  const envelope = signStatement(
    {
      ...ref,
      members: members.map((m) => ({ name: m.name, sha256: sha(m.bytes), size: m.bytes.length })),
      source: 'file:///test',
      run: { workflowId: 'test', runId: 'test' },
      publishedAt: new Date().toISOString(),
    },
    loadSigningKey(process.env.VMHUB_SIGNING_KEY_FILE!),
  );
  const result = await importImage(conn, ref, { file });
  const v = { ref, members, envelope, itemId: result.placement.itemId };
  versions.set(version, v);
  return v;
}

function sync(version: string, channel = 'stable', signed = true) {
  const envelope = signed ? versions.get(version)!.envelope : undefined;
  const input: ChannelItemInput = { ...versions.get(version)!.ref, sddc: 'east-1', target, envelope, channel };
  return new MockActivityEnvironment({ activityId: randomUUID() }, { logger }).run(
    activities.syncChannelItem,
    input,
  ) as Promise<ChannelItemOutput>;
}

async function failure(p: Promise<unknown>): Promise<ApplicationFailure> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ApplicationFailure);
  return err as ApplicationFailure;
}

const readBack = (itemId: string) => itemDigests(conn.library, itemId);
const digests = (v: Version) => Object.fromEntries(v.members.map((m) => [m.name, sha(m.bytes)]));
const size = (v: Version) => v.members.reduce((n, m) => n + m.bytes.length, 0);

beforeAll(async () => {
  conn = await VcenterConnection.open(target, testVcenter(target.vcenter, login));
  await imported('1.0.0', 256 * 1024);
  await imported('2.0.0', 384 * 1024);
});
afterAll(async () => {
  await conn.close();
  fs.rmSync(work, { recursive: true, force: true });
});

it('points one item at version after version: its ID stays, its files are each version’s, a repeat moves nothing', async () => {
  const [a, b] = [versions.get('1.0.0')!, versions.get('2.0.0')!];
  const first = await sync('1.0.0');
  expect(first).toMatchObject({ status: 'updated', bytesCopied: size(a), placement: { itemName: 'edge-stable' } });
  const id = first.placement.itemId;
  expect(id).not.toBe(a.itemId);
  expect(await readBack(id)).toEqual(digests(a));
  expect(await sync('1.0.0')).toEqual({ ...first, status: 'current', bytesCopied: 0 });

  expect(await sync('2.0.0')).toEqual({ ...first, status: 'updated', bytesCopied: size(b) });
  expect(await readBack(id)).toEqual(digests(b));
  expect((await conn.library.getItem(id))?.description).toBe(channelDescription(b.ref, 'stable'));

  // A rollback: the same item again, with the first version's bytes.
  expect(await sync('1.0.0')).toEqual({ ...first, status: 'updated', bytesCopied: size(a) });
  expect(await readBack(id)).toEqual(digests(a));
  expect(await conn.library.getItem(id)).toMatchObject({ type: 'ovf', description: channelDescription(a.ref, 'stable') });
  // The versions' own items are untouched.
  expect(await readBack(b.itemId)).toEqual(digests(b));
});

it('a version item whose disk was replaced after its import fails ProvenanceMismatch, and is never counted current', async () => {
  const c = await imported('3.0.0', 256 * 1024);
  const held = (await sync('1.0.0', 'canary')).placement.itemId;
  // Other bytes of the same size, through the vSphere API, as anyone with the library's rights could.
  const disk = c.members.find((m) => m.name === 'edge-disk1.vmdk')!;
  const other = Buffer.alloc(disk.bytes.length, 7);
  const session = await conn.library.createUpdateSession(c.itemId);
  const added = await conn.library.addFile(session, { name: disk.name, size: other.length, sha256: sha(other) });
  await conn.library.rest.upload(added.upload_endpoint!.uri, other.length, () => Readable.from([other]), disk.name);
  await conn.library.complete(session);

  const failed = await failure(sync('3.0.0', 'canary'));
  expect(failed).toMatchObject({ type: 'ProvenanceMismatch', nonRetryable: true });
  expect(failed.message).toContain(
    `item edge-3.0.0 differs from its signed statement: edge-disk1.vmdk reads with SHA-256 ${sha(other)}`,
  );
  const item = await conn.library.getItem(held);
  // The description never names a version the files were not checked to be.
  expect(item?.description).toBe(channelDescription(c.ref, 'canary', true));
  const sessions = await conn.library.updateSessionsOf(held);
  expect(sessions.map((s) => s.state).sort()).toEqual(['DONE', 'ERROR']);
  // vcsim writes an upload into the item as it arrives (a vCenter applies nothing of a failed session): there
  // the item now holds the new descriptor and a cut disk, which no check counts as either version.
  const members = (v: Version) => v.members.map((m) => ({ name: m.name, size: m.bytes.length, sha256: sha(m.bytes) }));
  expect((await verifyItem(conn.library, held, members(versions.get('1.0.0')!))).present).toBe(false);
  expect((await verifyItem(conn.library, held, members(c))).present).toBe(false);
  // Pointed back, the same item holds the first version whole again.
  expect(await sync('1.0.0', 'canary')).toMatchObject({ status: 'updated', placement: { itemId: held } });
  expect(await readBack(held)).toEqual(digests(versions.get('1.0.0')!));
});

it('refuses a version without its signed statement, and a channel another task is updating', async () => {
  const unsigned = await failure(sync('2.0.0', 'beta', false));
  expect(unsigned).toMatchObject({ type: 'UnsignedImage', nonRetryable: true });
  const lib = await conn.library.findLibrary(target.library);
  expect(await conn.library.findItem(lib!.id, 'edge-beta')).toBeUndefined();

  // A live holder: this test's parent process.
  const lock = path.join(work, 'edge', 'channel-beta.lock');
  const holder = { pid: process.ppid, process: 'other', activityId: 'other-task', since: new Date().toISOString() };
  expect((await acquireLock(lock, holder)).acquired).toBe(true);
  try {
    const busy = await failure(sync('2.0.0', 'beta'));
    expect(busy).toMatchObject({ type: 'ChannelUpdateInProgress', nonRetryable: false });
    expect(busy.message).toContain('activity other-task');
  } finally {
    await releaseLock(lock, holder);
  }
  expect(await conn.library.findItem(lib!.id, 'edge-beta')).toBeUndefined();
  expect(await sync('2.0.0', 'beta')).toMatchObject({ status: 'updated', placement: { itemName: 'edge-beta' } });
});

it('a version without a file the item holds has it removed in the session; vcsim, which then drops the session, fails clearly', async () => {
  await imported('4.0.0', 128 * 1024, 'edge-4.ovf');
  await sync('1.0.0', 'renamed');
  const err = await sync('4.0.0', 'renamed').then(
    () => undefined,
    (e: unknown) => e as Error,
  );
  // A vCenter removes edge.ovf and edge.mf when the session completes; vcsim 0.46.3's removeFile deletes the session.
  expect(err?.message).toMatch(/^could not remove edge\.mf from item edge-renamed in its update session: .* HTTP 404/);
});
