import fs from 'node:fs';
import path from 'node:path';
import { VmhubError } from '../src/shared/errors';
import { openImageSource } from '../src/source/image-source';
import { openSource } from '../src/source/open';
import { parseSourceHosts, type SourcePolicy } from '../src/source/policy';
import type { ImageSource } from '../src/source/source';
import { startFileServer, type FileServer, type FileServerOptions } from './harness/range-server';
import { filler, manifestLine, tempDir } from './images/build';

/**
 * http(s) sources against real servers on 127.0.0.1: every hostile answer or URL ends in its typed
 * error within 10 s, and nothing is ever sent to a non-loopback address.
 */
const root = tempDir('vmhub-http-');
const local: SourcePolicy = { hosts: parseSourceHosts('127.0.0.1'), credentials: [] };
const strict: SourcePolicy = { hosts: [], credentials: [] };
const KiB = 1024;

const iso = Buffer.concat([filler(32 * KiB, 1), Buffer.from('\x01CD001'), filler(100 * KiB, 2)]);
fs.writeFileSync(path.join(root, 'img.iso'), iso);

const servers: FileServer[] = [];
async function server(options: FileServerOptions = {}, ranges = true): Promise<FileServer> {
  const s = await startFileServer(root, ranges, options);
  servers.push(s);
  return s;
}
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  fs.rmSync(root, { recursive: true, force: true });
});

async function open(url: string, policy = local): Promise<ImageSource> {
  return openSource({ kind: 'http', url }, { policy });
}

/** The typed error a promise ends with, which must come within 10 s. */
async function refused(p: Promise<unknown>, type: string, message: RegExp): Promise<VmhubError> {
  const started = Date.now();
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(Date.now() - started).toBeLessThan(10_000);
  expect(err).toBeInstanceOf(VmhubError);
  expect({ type: (err as VmhubError).type, message: (err as Error).message }).toEqual({
    type,
    message: expect.stringMatching(message),
  });
  expect((err as Error).message).not.toContain('\n');
  return err as VmhubError;
}

describe('an allow-listed http server', () => {
  it('answers ranges bound to the ETag seen at open, read as identity', async () => {
    const s = await server();
    const source = await open(s.url('img.iso'));
    expect(source.sizeBytes).toBe(iso.length);
    expect(source.version).toMatch(/^etag:"\d+-[\d.]+"$/);
    expect((await source.read(1000, 50_000)).equals(iso.subarray(1000, 50_000))).toBe(true);
    const [first, ranged] = s.requests;
    expect(first.headers).toMatchObject({ range: 'bytes=0-0', 'accept-encoding': 'identity' });
    expect(ranged.headers).toMatchObject({
      range: 'bytes=1000-49999',
      'accept-encoding': 'identity',
      'if-match': source.version!.slice(5),
    });
  });

  it('falls back on Last-Modified when the ETag is weak', async () => {
    fs.writeFileSync(path.join(root, 'weak.iso'), iso);
    const s = await server({ weakEtag: true });
    const source = await open(s.url('weak.iso'));
    expect(source.version).toBe(`last-modified:${fs.statSync(path.join(root, 'weak.iso')).mtime.toUTCString()}`);
    await source.read(0, 10);
    expect(s.requests[1].headers['if-unmodified-since']).toBe(source.version!.slice('last-modified:'.length));
    fs.utimesSync(path.join(root, 'weak.iso'), new Date(), new Date(Date.now() + 5000));
    await refused(source.read(0, 10), 'SourceChanged', /changed since it was first read/);
  });

  it('opens an empty file (416, bytes */0) as zero bytes, which no format accepts', async () => {
    fs.writeFileSync(path.join(root, 'empty.iso'), '');
    const s = await server();
    expect((await open(s.url('empty.iso'))).sizeBytes).toBe(0);
    await refused(openImageSource(s.url('empty.iso'), [root], { policy: local }), 'InvalidImage', /is not an OVA/);
  });

  it('follows up to 5 redirects, each on the allow-list', async () => {
    const s = await server({
      redirect: (p) => {
        const hop = Number(/^\/hop(\d)\//.exec(p)?.[1] ?? 0);
        return hop < 5 ? `/hop${hop + 1}/img.iso` : undefined;
      },
    });
    fs.mkdirSync(path.join(root, 'hop5'), { recursive: true });
    fs.copyFileSync(path.join(root, 'img.iso'), path.join(root, 'hop5', 'img.iso'));
    const source = await open(`${s.origin}/hop0/img.iso`);
    expect((await source.read(0, 10)).equals(iso.subarray(0, 10))).toBe(true);
  });
});

describe('hostile sources end in a typed error', () => {
  it('plain http without an allow-list, before any connection', async () => {
    const s = await server();
    await refused(
      open(s.url('img.iso'), strict),
      'InvalidSource',
      /plain http is accepted only from hosts listed in VMHUB_SOURCE_HOSTS/,
    );
    expect(s.requests).toEqual([]);
  });

  it.each([
    ['127.0.0.1', /127\.0\.0\.1 is a loopback address/],
    ['2130706433', /127\.0\.0\.1 is a loopback address/],
    ['0x7f000001', /127\.0\.0\.1 is a loopback address/],
    ['127.1', /127\.0\.0\.1 is a loopback address/],
    ['[::ffff:127.0.0.1]', /::ffff:7f00:1 is a loopback address/],
    ['169.254.169.254', /169\.254\.169\.254 is a link-local address/],
    ['localhost', /localhost resolves to (127\.0\.0\.1|::1), a loopback address/],
  ])('https://%s without an allow-list', async (host, message) => {
    await refused(open(`https://${host}:1/img.iso`, strict), 'InvalidSource', message);
  });

  it('a name that DNS answers with a loopback address', async () => {
    const rebinding: SourcePolicy = { ...strict, resolve: async () => [{ address: '127.0.0.1', family: 4 }] };
    await refused(
      open('https://images.example.com:1/img.iso', rebinding),
      'InvalidSource',
      /images\.example\.com resolves to 127\.0\.0\.1/,
    );
  });

  it('a host that is not on the allow-list', async () => {
    await refused(open('http://127.0.0.2:1/img.iso'), 'InvalidSource', /host 127\.0\.0\.2 is not in VMHUB_SOURCE_HOSTS/);
  });

  it.each([
    ['localhost', (origin: string) => origin.replace('127.0.0.1', 'localhost'), /host localhost is not in VMHUB_SOURCE_HOSTS/],
    ['the metadata service', () => 'http://169.254.169.254/latest/meta-data/', /host 169\.254\.169\.254 is not in/],
    ['a file URL', () => 'file:///etc/passwd', /only http and https/],
    ['a URL with credentials', (origin: string) => origin.replace('//', '//user:pw@'), /may not carry credentials/],
  ])('a redirect to %s', async (_name, location, message) => {
    const s = await server({ redirect: (p) => (p === '/start' ? location(s.origin) : undefined) });
    await refused(open(s.url('start')), 'InvalidSource', message);
    expect(s.requests.map((r) => r.path)).toEqual(['/start']);
  });

  it('more than 5 redirects', async () => {
    const s = await server({ redirect: (p) => `/again${p.length}` });
    await refused(open(s.url('loop')), 'InvalidSource', /redirects more than 5 times/);
    expect(s.requests).toHaveLength(6);
  });

  it('a redirect without a Location', async () => {
    const s = await server({ redirect: () => '' });
    await refused(open(s.url('img.iso')), 'InvalidSource', /answered 302 without a Location/);
  });

  it('a compressed body', async () => {
    const s = await server({ contentEncoding: 'gzip' });
    await refused(open(s.url('img.iso')), 'InvalidSource', /Content-Encoding "gzip"; only identity is accepted/);
  });

  it('a server without Range support', async () => {
    const s = await server({}, false);
    await refused(open(s.url('img.iso')), 'InvalidSource', /does not answer Range requests \(status 200\)/);
  });

  it('a missing file', async () => {
    const s = await server();
    await refused(open(s.url('nope.iso')), 'InvalidSource', /answered 404/);
  });

  it('a Content-Range without a total at open', async () => {
    const s = await server({ contentRange: (start, end) => `bytes ${start}-${end}/*` });
    await refused(open(s.url('img.iso')), 'InvalidSource', /Content-Range "bytes 0-0\/\*"/);
  });

  it('a Content-Range for other bytes than asked', async () => {
    const s = await server({
      contentRange: (start, end, size) => (start === 0 ? `bytes ${start}-${end}/${size}` : `bytes 0-${end - start}/${size}`),
    });
    const source = await open(s.url('img.iso'));
    await refused(source.read(100, 200), 'InvalidSource', /answered bytes 0-99 when asked for 100-199/);
  });

  it('a Content-Range whose total changed since open', async () => {
    const s = await server({ contentRange: (start, end, size) => `bytes ${start}-${end}/${start === 0 ? size : size + 1}` });
    const source = await open(s.url('img.iso'));
    await refused(source.read(100, 200), 'SourceChanged', /is now \d+ bytes, was \d+/);
  });

  it('a body longer than the range asked for, refused without reading it all', async () => {
    const s = await server({ extraBytes: 64 * 1024 * 1024 });
    await refused(open(s.url('img.iso')), 'InvalidSource', /sent more than the 1 bytes asked for/);
  });

  it('content that changes after open (412 on If-Match)', async () => {
    fs.writeFileSync(path.join(root, 'changing.iso'), iso);
    const s = await server();
    const source = await open(s.url('changing.iso'));
    fs.writeFileSync(
      path.join(root, 'changing.iso'),
      Buffer.concat([iso.subarray(0, 1000), Buffer.from('other'), iso.subarray(1005)]),
    );
    fs.utimesSync(path.join(root, 'changing.iso'), new Date(), new Date(Date.now() + 5000));
    await refused(source.read(0, 100), 'SourceChanged', /changed since it was first read/);
  });

  it('content that changes after open on a server that ignores If-Match', async () => {
    fs.writeFileSync(path.join(root, 'ignoring.iso'), iso);
    const s = await server({ ignoreConditions: true });
    const source = await open(s.url('ignoring.iso'));
    fs.utimesSync(path.join(root, 'ignoring.iso'), new Date(), new Date(Date.now() + 5000));
    await refused(source.read(0, 100), 'SourceChanged', /changed since it was first read \(etag/);
  });

  it('a source that is not the pinned version', async () => {
    const s = await server();
    await refused(
      openImageSource(s.url('img.iso'), [root], { policy: local, pin: 'etag:"another"' }),
      'SourceChanged',
      /changed since it was first read/,
    );
    const opened = await openImageSource(s.url('img.iso'), [root], { policy: local });
    const pinned = await openImageSource(s.url('img.iso'), [root], { policy: local, pin: opened.image.version });
    expect(pinned.format).toBe('iso');
  });

  it.each([
    ['a query string', '?sig=SECRET', /may not carry a query string/],
    ['userinfo', '', /may not carry credentials/],
  ])('a source URL with %s', async (_name, suffix, message) => {
    const s = await server();
    const url = suffix ? `${s.url('img.iso')}${suffix}` : s.url('img.iso').replace('http://', 'http://me:SECRET@');
    const err = await refused(openImageSource(url, [root], { policy: local }), 'InvalidSource', message);
    expect(err.message).not.toContain('SECRET');
    expect(s.requests).toEqual([]);
  });
});

describe('a named source credential', () => {
  it('signs requests under its prefix with the token from the environment, which no error shows', async () => {
    const s = await server();
    const prefix = `${s.origin}/signed/`;
    const policy: SourcePolicy = {
      ...local,
      credentials: [{ id: 'vendor', urlPrefix: prefix, sasTokenEnv: 'VENDOR_SAS' }],
      env: { VENDOR_SAS: 'sv=1&sig=TOKEN' },
    };
    fs.mkdirSync(path.join(root, 'signed'), { recursive: true });
    fs.copyFileSync(path.join(root, 'img.iso'), path.join(root, 'signed', 'img.iso'));
    const source = await openSource({ kind: 'http', url: `${prefix}img.iso` }, { policy });
    await source.read(0, 10);
    expect(s.requests.map((r) => r.path)).toEqual(['/signed/img.iso?sv=1&sig=TOKEN', '/signed/img.iso?sv=1&sig=TOKEN']);
    expect(JSON.stringify({ ref: source.ref, version: source.version })).not.toContain('TOKEN');
    const err = await refused(
      openSource({ kind: 'http', url: `${prefix}missing.iso` }, { policy }),
      'InvalidSource',
      /answered 404/,
    );
    expect(err.message).not.toContain('TOKEN');
    expect(err.message).not.toContain('sig=');
  });
});

describe('an OVF package over http', () => {
  const disk = filler(5000, 7);
  const descriptor = (href: string) => `<?xml version="1.0"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
  <References><File ovf:href="${href}" ovf:id="f1" ovf:size="${disk.length}"/></References>
  <VirtualSystem ovf:id="vm"><Info/><Name>pkg</Name></VirtualSystem>
</Envelope>`;
  beforeAll(() => {
    fs.mkdirSync(path.join(root, 'pkg'), { recursive: true });
    fs.writeFileSync(path.join(root, 'pkg', 'disk.vmdk'), disk);
    fs.writeFileSync(path.join(root, 'secret.vmdk'), disk);
    fs.writeFileSync(path.join(root, 'pkg', 'good.ovf'), descriptor('disk.vmdk'));
    fs.writeFileSync(path.join(root, 'pkg', 'good.mf'), manifestLine('sha256', 'disk.vmdk', disk));
  });

  it('is read as the same OVA as the package on disk', async () => {
    const s = await server();
    const overHttp = await openImageSource(`${s.origin}/pkg/good.ovf`, [root], { policy: local });
    const onDisk = await openImageSource('pkg/good.ovf', [root]);
    expect(overHttp.format).toBe('ovf');
    expect(overHttp.image.sizeBytes).toBe(onDisk.image.sizeBytes);
    expect(
      (await overHttp.image.read(0, overHttp.image.sizeBytes)).equals(await onDisk.image.read(0, onDisk.image.sizeBytes)),
    ).toBe(true);
    expect(overHttp.image.version).toMatch(/^package:[0-9a-f]{64}$/);
    await Promise.all([overHttp.image.close(), onDisk.image.close()]);
  });

  it.each([
    ['an absolute URL to another origin', 'http://127.0.0.2/secret.vmdk', /it is a URL/],
    ['an absolute URL to the same origin', 'ORIGIN/secret.vmdk', /it is a URL/],
    ['a file URL', 'file:///etc/passwd', /it is a URL/],
    ['a parent path', '../secret.vmdk', /\.\. segment/],
    ['an absolute path', '/secret.vmdk', /absolute/],
    ['an encoded parent path', '%2e%2e/secret.vmdk', /percent-encoding hides/],
    ['an encoded slash', '..%2fsecret.vmdk', /percent-encoding hides/],
    ['a backslash', '..\\secret.vmdk', /backslash/],
    ['a query string', 'disk.vmdk?x=1', /\?/],
    ['a fragment', 'disk.vmdk#x', /#/],
    ['a malformed escape', 'disk%E0%A4%A.vmdk', /malformed/],
  ])('refuses %s as InvalidImage, without requesting it', async (name, href, message) => {
    const s = await server();
    const origin = s.origin;
    const file = `bad-${name.replace(/\W+/g, '-')}.ovf`;
    fs.writeFileSync(path.join(root, 'pkg', file), descriptor(href.replace('ORIGIN', origin).replace(/&/g, '&amp;')));
    await refused(openImageSource(`${s.origin}/pkg/${file}`, [root], { policy: local }), 'InvalidImage', message);
    expect(s.requests.map((r) => r.path).filter((p) => !p.startsWith(`/pkg/bad-`))).toEqual([]);
  });

  it('refuses a package whose descriptor references a file that is not there', async () => {
    const s = await server();
    fs.writeFileSync(path.join(root, 'pkg', 'lacking.ovf'), descriptor('nowhere.vmdk'));
    await refused(
      openImageSource(`${s.origin}/pkg/lacking.ovf`, [root], { policy: local }),
      'InvalidImage',
      /lacks "nowhere\.vmdk"/,
    );
  });

  it('refuses a descriptor that references its own manifest', async () => {
    const s = await server();
    fs.writeFileSync(path.join(root, 'pkg', 'self.ovf'), descriptor('self.mf'));
    await refused(
      openImageSource(`${s.origin}/pkg/self.ovf`, [root], { policy: local }),
      'InvalidImage',
      /already in the package/,
    );
  });
});
