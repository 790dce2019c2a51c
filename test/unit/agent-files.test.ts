import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { writeFully, writevFully } from '../../src/datastore/files';
import { checkFreeSpace, deploymentDir } from '../../src/datastore/layout';
import { acquireLock, holderAlive, lockHolder, releaseLock, type LockHolder } from '../../src/datastore/locks';
import { checkDownloadInput, type DownloadInput } from '../../src/deploy/download-request';
import { VmhubError } from '../../src/shared/errors';

const dirs: string[] = [];
const tmp = () => {
  dirs.push(fs.mkdtempSync(path.join(os.tmpdir(), 'agent-files-')));
  return dirs[dirs.length - 1];
};
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));
const deadPid = () => spawnSync(process.execPath, ['-e', '']).pid;

describe('writeFully', () => {
  it('goes on from where a short write stopped until every byte is written', async () => {
    const disk = Buffer.alloc(64, 0);
    const calls: Array<[number, number]> = [];
    const handle = {
      // Takes at most 5 bytes a call, as a write to a nearly full disk or one cut short by a signal may.
      write: async (buf: Uint8Array, offset: number, length: number, position: number) => {
        const n = Math.min(5, length);
        disk.set(buf.subarray(offset, offset + n), position);
        calls.push([offset, position]);
        return { bytesWritten: n, buffer: buf };
      },
    };
    const data = Buffer.from('the quick brown fox jumps over the lazy dog');
    await writeFully(handle as never, data, 10);
    expect(disk.subarray(10, 10 + data.length).equals(data)).toBe(true);
    expect(calls.length).toBe(Math.ceil(data.length / 5));
    expect(calls[1]).toEqual([5, 15]);
  });

  it('fails rather than loop for ever when a write takes nothing', async () => {
    const handle = { write: async (buf: Uint8Array) => ({ bytesWritten: 0, buffer: buf }) };
    await expect(writeFully(handle as never, Buffer.from('x'), 0)).rejects.toThrow(/wrote nothing/);
  });
});

describe('writevFully', () => {
  it('writes the rest piece by piece after a gathering write stopped short, in the middle of a buffer', async () => {
    const disk = Buffer.alloc(64, 0);
    const handle = {
      writev: async (bufs: Buffer[], position: number) => {
        // Takes the first buffer and 3 bytes of the second.
        disk.set(bufs[0], position);
        disk.set(bufs[1].subarray(0, 3), position + bufs[0].length);
        return { bytesWritten: bufs[0].length + 3, buffers: bufs };
      },
      write: async (buf: Uint8Array, offset: number, length: number, position: number) => {
        disk.set(buf.subarray(offset, offset + length), position);
        return { bytesWritten: length, buffer: buf };
      },
    };
    const parts = ['the quick ', 'brown fox ', 'jumps'].map((t) => Buffer.from(t));
    await writevFully(handle as never, parts, 4);
    expect(disk.subarray(4, 4 + 25).toString()).toBe('the quick brown fox jumps');
    expect(disk[3]).toBe(0);
    expect(disk[29]).toBe(0);
  });
});

describe('checkFreeSpace', () => {
  it('refuses a download the filesystem has no room for, typed InsufficientSpace', () => {
    expect(() => checkFreeSpace({ bavail: 10, bsize: 4096 }, 40960, '/ds')).not.toThrow();
    const err = (() => {
      try {
        checkFreeSpace({ bavail: 10, bsize: 4096 }, 40961, '/ds');
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(VmhubError);
    expect(err).toMatchObject({ type: 'InsufficientSpace', message: '/ds has 40.0 KiB free; the download needs 40.0 KiB more' });
  });
});

describe('checkDownloadInput', () => {
  const good: DownloadInput = {
    sddc: 'east-1',
    image: 'edge',
    version: '1.0.0',
    format: 'ova',
    sha256: 'a'.repeat(64),
    sizeBytes: 10,
    blob: 'edge/1.0.0/edge-1.0.0.ova',
    sources: [],
  };
  it('accepts what the workflow sends', () => expect(() => checkDownloadInput(good, 'east-1')).not.toThrow());
  it.each([
    [{ image: '../etc' }, /image name/],
    [{ image: 'a/b' }, /image name/],
    [{ version: '../../1.0.0' }, /semantic version/],
    [{ version: '1.0.0/..' }, /semantic version/],
    [{ sddc: '../west' }, /SDDC name/],
    [{ sddc: 'west-1' }, /serves SDDC east-1, not west-1/],
    [{ format: 'vmdk' }, /format "vmdk"/],
    [{ sha256: 'A'.repeat(64) }, /sha256/],
    [{ sizeBytes: -1 }, /sizeBytes/],
  ])('refuses %j as InvalidInput', (change, message) => {
    expect(() => checkDownloadInput({ ...good, ...change } as DownloadInput, 'east-1')).toThrow(
      expect.objectContaining({ type: 'InvalidInput', message: expect.stringMatching(message) }),
    );
  });
});

describe('deploymentDir', () => {
  it('creates <root>/<image>/<version> under the real path of the root', async () => {
    const root = path.join(tmp(), 'not', 'yet');
    expect(await deploymentDir(root, 'edge', '1.0.0')).toBe(path.join(fs.realpathSync(root), 'edge', '1.0.0'));
    expect(fs.statSync(path.join(root, 'edge', '1.0.0')).isDirectory()).toBe(true);
  });

  it.each([
    ['image', (root: string, outside: string) => fs.symlinkSync(outside, path.join(root, 'edge'))],
    [
      'version',
      (root: string, outside: string) => {
        fs.mkdirSync(path.join(root, 'edge'));
        fs.symlinkSync(outside, path.join(root, 'edge', '1.0.0'));
      },
    ],
  ])('refuses a linked %s directory and creates nothing through it', async (_level, link) => {
    const root = tmp();
    const outside = tmp();
    link(root, outside);
    await expect(deploymentDir(root, 'edge', '1.0.0')).rejects.toMatchObject({
      type: 'InvalidInput',
      message: expect.stringMatching(/is a link/),
    });
    expect(fs.readdirSync(outside)).toEqual([]);
  });
});

describe('download locks', () => {
  const holder = (activityId: string): LockHolder => lockHolder(activityId, 'deploy:edge:1.0.0:x');

  it('lets one holder in at a time, and releases only its own lock', async () => {
    const lock = path.join(tmp(), '.edge.lock');
    const first = holder('1');
    expect(await acquireLock(lock, first)).toEqual({ acquired: true });
    expect(await acquireLock(lock, holder('2'))).toEqual({ acquired: false, holder: first });
    await releaseLock(lock, holder('2'));
    expect(fs.existsSync(lock)).toBe(true);
    await releaseLock(lock, first);
    expect(fs.existsSync(lock)).toBe(false);
    expect(fs.readdirSync(path.dirname(lock))).toEqual([]);
  });

  it.each([
    ['a process that is gone', { ...lockHolder('old'), pid: deadPid() }],
    ['an earlier process that had this pid', { ...lockHolder('old'), process: 'earlier' }],
  ])('takes over a lock held by %s', async (_who, dead) => {
    const lock = path.join(tmp(), '.edge.lock');
    fs.writeFileSync(lock, JSON.stringify(dead));
    const mine = holder('new');
    expect(await acquireLock(lock, mine)).toEqual({ acquired: true, tookOverFrom: JSON.stringify(dead) });
    expect(JSON.parse(fs.readFileSync(lock, 'utf8'))).toEqual(mine);
  });

  it('takes over an unreadable lock', async () => {
    const lock = path.join(tmp(), '.edge.lock');
    fs.writeFileSync(lock, 'garbage');
    expect(await acquireLock(lock, holder('new'))).toMatchObject({ acquired: true });
  });

  it('of the activities of one agent taking over one dead lock at once, exactly one gets it', async () => {
    const lock = path.join(tmp(), '.edge.lock');
    fs.writeFileSync(lock, JSON.stringify({ ...lockHolder('old'), pid: deadPid() }));
    const outcomes = await Promise.all(Array.from({ length: 8 }, (_, i) => acquireLock(lock, holder(String(i)))));
    expect(outcomes.filter((o) => o.acquired)).toHaveLength(1);
    expect(fs.readdirSync(path.dirname(lock))).toEqual(['.edge.lock']);
  });

  it('judges a holder alive by its pid, and this process by its own identity', () => {
    expect(holderAlive(lockHolder('a'))).toBe(true);
    expect(holderAlive({ ...lockHolder('a'), process: 'earlier' })).toBe(false);
    expect(holderAlive({ ...lockHolder('a'), pid: deadPid() })).toBe(false);
    expect(holderAlive({ ...lockHolder('a'), pid: 1 })).toBe(true);
  });
});
