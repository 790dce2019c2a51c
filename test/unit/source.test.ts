import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { VmhubError } from '../../src/errors';
import { sniffFormat } from '../../src/images/format';
import { redact, resolveSource } from '../../src/source/source';

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
  });
  afterAll(() => fs.rmSync(base, { recursive: true, force: true }));

  it.each([
    ['sub/x.ova', path.join('a', 'sub', 'x.ova')],
    ['./sub/../sub/x.ova', path.join('a', 'sub', 'x.ova')],
    ['link-in', path.join('a', 'sub', 'x.ova')],
    [path.join(base, 'b', 'y.iso'), path.join('b', 'y.iso')],
  ])('accepts %s', (source, expected) => {
    expect(resolveSource(source, [rootA, rootB])).toEqual({ kind: 'file', path: fs.realpathSync(path.join(base, expected)) });
  });

  it.each([
    ['../secret', /outside the repository/],
    [path.join(base, 'secret'), /outside the repository/],
    ['link-out', /links outside/],
    ['sub', /not a regular file/],
    ['missing.ova', /does not exist/],
    ['', /empty/],
    ['a\0b', /NUL/],
    ['ftp://host/x.iso', /not supported/],
    ['file:///etc/passwd', /not supported/],
    ['http://user:pw@host/x.iso', /credentials/],
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
});

describe('sniffFormat', () => {
  const tar = Buffer.alloc(512);
  tar.write('ustar', 257, 'latin1');
  const iso = Buffer.alloc(32 * 1024 + 6);
  iso.write('CD001', 32769, 'latin1');
  it.each([
    ['a tar header', tar, 'ova'],
    ['an ISO 9660 descriptor', iso, 'iso'],
    ['an XML declaration', Buffer.from('<?xml version="1.0"?><Envelope/>'), 'ovf'],
    ['a BOM and a prefixed Envelope', Buffer.from('\uFEFF  <ovf:Envelope xmlns:ovf="x">'), 'ovf'],
    ['random text', Buffer.from('hello world'), undefined],
    ['nothing', Buffer.alloc(0), undefined],
  ])('%s → %s', (_name, bytes, format) => {
    expect(sniffFormat(bytes)).toBe(format);
  });
});
