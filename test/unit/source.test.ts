import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { VmhubError } from '../../src/shared/errors';
import { sniffFormat } from '../../src/shared/image-format';
import { redact } from '../../src/source/policy';
import { openImageSource } from '../../src/source/image-source';
import { openSource } from '../../src/source/open';
import { OvfPackageSource } from '../../src/source/ovf-package';
import { resolveSource, type ImageSource } from '../../src/source/source';
import { filler, withFileSizes } from '../images/build';
import { fixture } from '../images/fixtures';

describe('resolveSource', () => {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'vmhub-src-'));
  const rootA = path.join(base, 'a');
  const rootB = path.join(base, 'b');
  beforeAll(() => {
    fs.mkdirSync(path.join(rootA, 'sub'), { recursive: true });
    fs.mkdirSync(rootB);
    fs.writeFileSync(path.join(rootA, 'sub', 'x.ova'), 'x');
    fs.writeFileSync(path.join(rootB, 'y.iso'), 'y');
    fs.writeFileSync(path.join(base, 'secret'), 's');
    fs.symlinkSync(path.join(base, 'secret'), path.join(rootA, 'link-out'));
    fs.symlinkSync(path.join(rootA, 'sub', 'x.ova'), path.join(rootA, 'link-in'));
    fs.symlinkSync(path.join(rootB, 'y.iso'), path.join(rootA, 'link-to-b'));
  });
  afterAll(() => fs.rmSync(base, { recursive: true, force: true }));

  it.each([
    ['sub/x.ova', path.join('a', 'sub', 'x.ova')],
    ['./sub/../sub/x.ova', path.join('a', 'sub', 'x.ova')],
    ['link-in', path.join('a', 'sub', 'x.ova')],
    // Into another root: what its message advises (add the target's folder as a root) is then accepted.
    ['link-to-b', path.join('b', 'y.iso')],
    [path.join(base, 'b', 'y.iso'), path.join('b', 'y.iso')],
  ])('accepts %s', (source, expected) => {
    const real = fs.realpathSync(path.join(base, expected));
    const stat = fs.statSync(real, { bigint: true });
    expect(resolveSource(source, [rootA, rootB])).toEqual({ kind: 'file', path: real, inode: `${stat.dev}:${stat.ino}` });
  });

  it.each([
    ['../secret', /outside the repository/],
    [path.join(base, 'secret'), /outside the repository/],
    ['link-out', /^source link-out links outside every repository root; copy the file itself under a root/],
    ['sub', /not a regular file/],
    ['missing.ova', /does not exist/],
    ['', /empty/],
    ['a\0b', /NUL/],
    ['ftp://host/x.iso', /not supported/],
    ['file:///etc/passwd', /not supported/],
    ['http://user:pw@host/x.iso', /credentials/],
    ['https://user@host/x.iso', /credentials/],
    ['https://:pw@host/x.iso', /credentials/],
    ['https://host/x.iso?sig=SECRET', /query string/],
    ['https://host/x.iso?', /query string/],
    ['https://host/x.iso#part', /fragment/],
    ['https://host:99999/x.iso', /not a valid URL/],
  ])('rejects %j', (source, message) => {
    try {
      resolveSource(source, [rootA, rootB]);
      throw new Error('accepted');
    } catch (err) {
      expect(err).toBeInstanceOf(VmhubError);
      expect((err as VmhubError).type).toBe('InvalidSource');
      expect((err as VmhubError).message).toMatch(message);
    }
  });

  it('keeps http(s) URLs as they are', () => {
    expect(resolveSource('https://repo.example/img.ova', [rootA])).toEqual({ kind: 'http', url: 'https://repo.example/img.ova' });
  });
});

describe('redact', () => {
  it('drops query strings, where SAS tokens live', () => {
    expect(redact('https://a.blob.core.windows.net/c/x.ova?sv=2024&sig=SECRET')).toBe(
      'https://a.blob.core.windows.net/c/x.ova?…',
    );
  });

  it('drops credentials and fragments', () => {
    expect(redact('https://user:SECRET@host:8443/x.ova#SECRET')).toBe('https://host:8443/x.ova');
  });
});

describe('sniffFormat', () => {
  const tar = Buffer.alloc(512);
  tar.write('ustar', 257, 'latin1');
  const iso = Buffer.alloc(32 * 1024 + 6);
  iso.write('CD001', 32769, 'latin1');
  it.each([
    ['a tar header', 'ova', tar],
    ['an ISO 9660 descriptor', 'iso', iso],
    ['an XML declaration', 'ovf', Buffer.from('<?xml version="1.0"?><Envelope/>')],
    ['a BOM and a prefixed Envelope', 'ovf', Buffer.from('\uFEFF  <ovf:Envelope xmlns:ovf="x">')],
    ['random text', undefined, Buffer.from('hello world')],
    ['nothing', undefined, Buffer.alloc(0)],
  ])('%s → %s', (_name, format, bytes) => {
    expect(sniffFormat(bytes)).toBe(format);
  });
});

describe('opening a repository file', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'vmhub-open-'));
  const outside = fs.mkdtempSync(path.join(os.tmpdir(), 'vmhub-outside-'));
  afterAll(() => {
    fs.rmSync(root, { recursive: true, force: true });
    fs.rmSync(outside, { recursive: true, force: true });
  });
  const write = (name: string, bytes = 'bytes of an image') => {
    fs.mkdirSync(path.dirname(path.join(root, name)), { recursive: true });
    fs.writeFileSync(path.join(root, name), bytes);
    return name;
  };
  /** Replaces a checked path atomically, as an attacker racing the worker would. */
  const swap = (name: string, make: (tmp: string) => void) => {
    const tmp = path.join(root, `.swap-${Math.random()}`);
    make(tmp);
    fs.renameSync(tmp, path.join(root, name));
  };
  fs.writeFileSync(path.join(outside, 'secret'), 'not an image');

  async function refusedOpen(name: string, change: () => void, message: RegExp): Promise<void> {
    const ref = resolveSource(name, [root]);
    change();
    const started = Date.now();
    const err = await openSource(ref).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(VmhubError);
    expect((err as VmhubError).type).toBe('InvalidSource');
    expect((err as Error).message).toMatch(message);
    expect(Date.now() - started).toBeLessThan(10_000);
  }

  it('binds the source to the file’s identity, size and modification time', async () => {
    write('v.iso');
    const source = await openSource(resolveSource('v.iso', [root]));
    const stat = fs.statSync(path.join(root, 'v.iso'), { bigint: true });
    expect(source.version).toBe(`file:${stat.ino}:${stat.size}:${stat.mtimeNs}`);
    expect((await source.read(0, 5)).toString()).toBe('bytes');
    await source.close();
  });

  it('refuses a file swapped for a symlink after its check', () =>
    refusedOpen(
      write('link.iso'),
      () => swap('link.iso', (tmp) => fs.symlinkSync(path.join(outside, 'secret'), tmp)),
      /symbolic link/,
    ));

  it('refuses a file swapped for another file after its check', () =>
    refusedOpen(
      write('other.iso'),
      () => swap('other.iso', (tmp) => fs.writeFileSync(tmp, 'other bytes')),
      /replaced by another file/,
    ));

  it('refuses a file whose directory was swapped for a symlink after its check', () => {
    fs.writeFileSync(path.join(outside, 'deep.iso'), 'outside');
    return refusedOpen(
      write('dir/deep.iso'),
      () => {
        fs.renameSync(path.join(root, 'dir'), path.join(root, 'dir-moved'));
        fs.symlinkSync(outside, path.join(root, 'dir'));
      },
      /replaced by another file/,
    );
  });

  it('refuses a FIFO at once', () => {
    execFileSync('mkfifo', [path.join(root, 'pipe.iso')]);
    expect(() => resolveSource('pipe.iso', [root])).toThrow(/not a regular file/);
  });

  it('refuses a file swapped for a FIFO after its check, without waiting for a writer', () =>
    refusedOpen(write('fifo.iso'), () => swap('fifo.iso', (tmp) => execFileSync('mkfifo', [tmp])), /no longer a regular file/));

  it('reports a file removed after its check as missing', () =>
    refusedOpen(write('gone.iso'), () => fs.rmSync(path.join(root, 'gone.iso')), /no longer exists/));

  it('openImageSource refuses other content than the pinned version', async () => {
    const iso = Buffer.alloc(40 * 1024);
    iso.write('CD001', 32769, 'latin1');
    write('pinned.iso', iso.toString('latin1'));
    const first = await openImageSource('pinned.iso', [root]);
    const pin = first.image.version!;
    await first.image.close();
    const again = await openImageSource('pinned.iso', [root], { pin });
    expect(again.image.version).toBe(pin);
    await again.image.close();
    fs.appendFileSync(path.join(root, 'pinned.iso'), 'more');
    const err = await openImageSource('pinned.iso', [root], { pin }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((err as VmhubError).type).toBe('SourceChanged');
  });
});

describe('an OVF descriptor’s own name', () => {
  it('is refused as InvalidSource when its URL holds a malformed escape', async () => {
    const text = Buffer.from('<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1"><VirtualSystem/></Envelope>');
    const descriptor: ImageSource = {
      ref: { kind: 'http', url: 'https://images.example.com/a%E0%A4%A.ovf' },
      sizeBytes: text.length,
      version: undefined,
      read: async (start, end) => text.subarray(start, end),
      close: async () => undefined,
    };
    const err = await OvfPackageSource.open(descriptor, []).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(VmhubError);
    expect((err as VmhubError).type).toBe('InvalidSource');
    expect((err as Error).message).toMatch(/malformed percent-encoding/);
  });
});

describe('an OVF package read into a buffer of the caller', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'vmhub-ovf-read-'));
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

  it('fills exactly the range asked, across members, and refuses a range past its end', async () => {
    const disk = filler(3 * 1024 * 1024 + 5, 4);
    const descriptor = withFileSizes(fixture('govmomi__ttylinux-pc_i486-16.1.ovf'), {
      'ttylinux-pc_i486-16.1-disk1.vmdk': disk.length,
    });
    fs.writeFileSync(path.join(root, 'tty.ovf'), descriptor);
    fs.writeFileSync(path.join(root, 'ttylinux-pc_i486-16.1-disk1.vmdk'), disk);
    const { image } = await openImageSource('tty.ovf', [root]);
    try {
      const whole = await image.read(0, image.sizeBytes);
      const pool = Buffer.from(new SharedArrayBuffer(image.sizeBytes + 64));
      for (const [start, end] of [
        [0, image.sizeBytes],
        [100, 2048], // the tar header and the descriptor
        [1000, 1 << 20], // from the descriptor into the disk
        [image.sizeBytes - 4000, image.sizeBytes], // the disk's tail, its padding and the archive's end
      ]) {
        pool.fill(0xee);
        const into = pool.subarray(32, 32 + end - start);
        const read = await image.read(start, end, undefined, into);
        expect(read).toBe(into);
        expect(read.equals(whole.subarray(start, end))).toBe(true);
        // Not a byte written around it.
        expect(pool[31]).toBe(0xee);
        expect(pool[32 + end - start]).toBe(0xee);
      }
      await expect(image.read(image.sizeBytes - 10, image.sizeBytes + 10)).rejects.toThrow(RangeError);
    } finally {
      await image.close();
    }
  });
});
