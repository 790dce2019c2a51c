import type dns from 'node:dns';
import fs from 'node:fs';
import path from 'node:path';
import { loadConfig } from '../../src/config';
import { VmhubError } from '../../src/shared/errors';
import { nonPublicReason } from '../../src/source/address';
import { checkedLookup, checkTarget, parseSourceHosts, requestTarget, scrub, type SourcePolicy } from '../../src/source/policy';
import { parseTopology } from '../../src/topology/topology';

function refusal(fn: () => unknown): VmhubError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(VmhubError);
    expect((err as VmhubError).type).toBe('InvalidSource');
    return err as VmhubError;
  }
  throw new Error('accepted');
}

const strict: SourcePolicy = { hosts: [], credentials: [] };

describe('non-public addresses', () => {
  it.each([
    ['127.0.0.1', 'loopback'],
    ['127.255.255.254', 'loopback'],
    ['10.1.2.3', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.1.1', 'private'],
    ['100.64.0.1', 'shared (CGNAT)'],
    ['100.127.255.255', 'shared (CGNAT)'],
    ['169.254.169.254', 'link-local'],
    ['0.0.0.0', 'unspecified ("this network")'],
    ['224.0.0.1', 'multicast'],
    ['239.255.255.250', 'multicast'],
    ['255.255.255.255', 'reserved'],
    ['192.0.2.7', 'documentation'],
    ['198.18.0.1', 'benchmarking'],
    ['::1', 'loopback'],
    ['::', 'unspecified'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['0:0:0:0:0:ffff:a9fe:a9fe', 'link-local'],
    ['64:ff9b::10.0.0.1', 'private'],
    ['fc00::1', 'unique-local (private)'],
    ['fd12:3456::1', 'unique-local (private)'],
    ['fe80::1', 'link-local'],
    ['fe80::1%eth0', 'link-local'],
    ['ff02::1', 'multicast'],
    ['::127.0.0.1', 'reserved'],
    ['2001:db8::1', 'documentation'],
    ['2002:7f00:1::', '6to4'],
    ['2001::1', 'IETF protocol'],
    ['not-an-ip', 'not an IP address'],
  ])('%s is %s', (address, reason) => {
    expect(nonPublicReason(address)).toBe(reason);
  });

  it.each([
    '8.8.8.8',
    '1.1.1.1',
    '100.128.0.1',
    '172.32.0.1',
    '192.169.0.1',
    '2606:4700::1111',
    '::ffff:8.8.8.8',
    '64:ff9b::8.8.8.8',
  ])('%s is public', (address) => {
    expect(nonPublicReason(address)).toBeUndefined();
  });
});

describe('VMHUB_SOURCE_HOSTS', () => {
  it('normalizes host names, IP addresses and *.suffix patterns', () => {
    expect(parseSourceHosts(' Images.Example.COM, *.cdn.example ,127.0.0.1,::1,[fd00::2], 2130706433,,')).toEqual([
      'images.example.com',
      '*.cdn.example',
      '127.0.0.1',
      '[::1]',
      '[fd00::2]',
      '127.0.0.1',
    ]);
    expect(loadConfig({ VMHUB_SOURCE_HOSTS: 'a.example' }).sourceHosts).toEqual(['a.example']);
    expect(loadConfig({}).sourceHosts).toEqual([]);
  });

  it.each(['*', '*.127.0.0.1', 'host:8080', 'https://host', 'host/path', 'user@host', '256.1.1.1', 'a b'])(
    'refuses %j',
    (entry) => {
      expect(() => parseSourceHosts(entry)).toThrow(/VMHUB_SOURCE_HOSTS entry/);
    },
  );
});

describe('checkTarget without an allow-list', () => {
  it.each([
    ['https://127.0.0.1/x.ova', /127\.0\.0\.1 is a loopback address/],
    ['https://2130706433/x.ova', /127\.0\.0\.1 is a loopback address/],
    ['https://0x7f000001/x.ova', /127\.0\.0\.1 is a loopback address/],
    ['https://127.1/x.ova', /127\.0\.0\.1 is a loopback address/],
    ['https://017700000001/x.ova', /127\.0\.0\.1 is a loopback address/],
    ['https://[::ffff:127.0.0.1]/x.ova', /::ffff:7f00:1 is a loopback address/],
    ['https://[::1]/x.ova', /::1 is a loopback address/],
    ['https://169.254.169.254/latest/meta-data', /link-local/],
    ['https://10.0.0.1/x.ova', /private/],
    ['https://100.64.0.1/x.ova', /CGNAT/],
    ['https://[fd00::1]/x.ova', /unique-local/],
    ['https://[fe80::1]/x.ova', /link-local/],
    ['https://224.0.0.1/x.ova', /multicast/],
    ['https://0.0.0.0/x.ova', /unspecified/],
    ['https://0/x.ova', /unspecified/],
    ['http://images.example.com/x.ova', /plain http is accepted only from hosts listed/],
    ['http://8.8.8.8/x.ova', /plain http/],
    ['ftp://images.example.com/x.ova', /only http and https/],
    ['https://user:pw@images.example.com/x.ova', /may not carry credentials/],
  ])('refuses %s', (url, message) => {
    const err = refusal(() => checkTarget(new URL(url), strict));
    expect(err.message).toMatch(message);
    expect(err.message).not.toContain('pw');
  });

  it('accepts a public IP literal over https, and resolves a name with a checking lookup', () => {
    expect(checkTarget(new URL('https://8.8.8.8/x.ova'), strict)).toBeUndefined();
    expect(checkTarget(new URL('https://images.example.com/x.ova'), strict)).toEqual(expect.any(Function));
  });
});

describe('checkTarget with an allow-list', () => {
  const policy: SourcePolicy = { hosts: parseSourceHosts('images.example.com,*.cdn.example,127.0.0.1,[::1]'), credentials: [] };

  it.each([
    'http://images.example.com/x.ova',
    'https://IMAGES.example.com./x.ova',
    'https://a.cdn.example/x.ova',
    'https://a.b.cdn.example/x.ova',
    'http://127.0.0.1:8080/x.ova',
    'http://2130706433/x.ova',
    'http://[::1]:8080/x.ova',
  ])('lets %s through, whatever its addresses', (url) => {
    expect(checkTarget(new URL(url), policy)).toBeUndefined();
  });

  it.each([
    'https://cdn.example/x.ova',
    'https://evilcdn.example/x.ova',
    'https://images.example.com.evil.example/x.ova',
    'https://localhost/x.ova',
    'http://127.0.0.2/x.ova',
    'https://8.8.8.8/x.ova',
  ])('refuses %s, not on the list', (url) => {
    expect(refusal(() => checkTarget(new URL(url), policy)).message).toMatch(/is not in VMHUB_SOURCE_HOSTS/);
  });
});

describe('the checking lookup', () => {
  type Found = dns.LookupAddress[];
  const lookupWith = (answers: Found[]) => {
    let call = 0;
    return checkedLookup('images.example.com', async () => answers[Math.min(call++, answers.length - 1)]);
  };
  const run = (lookup: ReturnType<typeof checkedLookup>, options: dns.LookupOptions = {}) =>
    new Promise<{ err: unknown; address: unknown; family?: number }>((resolve) =>
      lookup('images.example.com', options, (err, address, family) => resolve({ err, address, family })),
    );

  it('hands over exactly the public addresses it checked', async () => {
    const found: Found = [
      { address: '8.8.8.8', family: 4 },
      { address: '2606:4700::1111', family: 6 },
    ];
    expect(await run(lookupWith([found]))).toEqual({ err: null, address: '8.8.8.8', family: 4 });
    expect(await run(lookupWith([found]), { all: true })).toEqual({ err: null, address: found, family: undefined });
    expect(await run(lookupWith([found]), { family: 6 })).toEqual({ err: null, address: '2606:4700::1111', family: 6 });
  });

  it('refuses a name with any non-public address', async () => {
    const { err } = await run(
      lookupWith([
        [
          { address: '8.8.8.8', family: 4 },
          { address: '127.0.0.1', family: 4 },
        ],
      ]),
    );
    expect(err).toBeInstanceOf(VmhubError);
    expect((err as VmhubError).type).toBe('InvalidSource');
    expect((err as Error).message).toBe('images.example.com resolves to 127.0.0.1, a loopback address');
  });

  it('checks every resolution: DNS rebinding to a private address after a public answer is refused', async () => {
    const lookup = lookupWith([[{ address: '8.8.8.8', family: 4 }], [{ address: '169.254.169.254', family: 4 }]]);
    expect((await run(lookup)).err).toBeNull();
    expect(((await run(lookup)).err as Error).message).toMatch(/169\.254\.169\.254, a link-local address/);
  });

  it('passes resolver failures on as they are, to be retried', async () => {
    const failure = Object.assign(new Error('getaddrinfo EAI_AGAIN'), { code: 'EAI_AGAIN' });
    const lookup = checkedLookup('images.example.com', () => Promise.reject(failure));
    expect((await run(lookup)).err).toBe(failure);
  });
});

describe('source credentials', () => {
  const credentials = [
    { id: 'vendor', urlPrefix: 'https://vendor.example.com/images/', sasTokenEnv: 'VENDOR_SAS' },
    { id: 'vendor-beta', urlPrefix: 'https://vendor.example.com/images/beta/', sasTokenEnv: 'VENDOR_BETA_SAS' },
  ];
  const env = { VENDOR_SAS: '?sv=2024&sig=SECRET%2B1', VENDOR_BETA_SAS: 'sig=BETA' };
  const policy: SourcePolicy = { hosts: [], credentials, env };

  it('appends the token of the longest matching prefix, read from the environment at request time', () => {
    expect(requestTarget(new URL('https://vendor.example.com/images/a.ova'), policy)).toEqual({
      path: '/images/a.ova?sv=2024&sig=SECRET%2B1',
      secret: 'sv=2024&sig=SECRET%2B1',
    });
    expect(requestTarget(new URL('https://vendor.example.com/images/beta/a.ova'), policy).path).toBe(
      '/images/beta/a.ova?sig=BETA',
    );
  });

  it.each([
    'https://vendor.example.com/other/a.ova',
    'https://vendor.example.com/images',
    'https://vendor.example.com.evil.example/images/a.ova',
    'http://vendor.example.com/images/a.ova',
    'https://vendor.example.com:444/images/a.ova',
  ])('sends no token to %s', (url) => {
    expect(requestTarget(new URL(url), policy).secret).toBeUndefined();
  });

  it('matches a prefix without a trailing slash by whole path segments', () => {
    const bare: SourcePolicy = {
      hosts: [],
      credentials: [{ id: 'bare', urlPrefix: 'https://vendor.example.com/images', sasTokenEnv: 'VENDOR_SAS' }],
      env,
    };
    expect(requestTarget(new URL('https://vendor.example.com/images/a.ova'), bare).secret).toBe('sv=2024&sig=SECRET%2B1');
    expect(requestTarget(new URL('https://vendor.example.com/images'), bare).secret).toBe('sv=2024&sig=SECRET%2B1');
    for (const neighbour of ['https://vendor.example.com/images-evil/a.ova', 'https://vendor.example.com/imagesX']) {
      expect(requestTarget(new URL(neighbour), bare).secret).toBeUndefined();
    }
  });

  it('keeps a query a redirect chose, and adds no token to it', () => {
    expect(requestTarget(new URL('https://vendor.example.com/images/a.ova?signed=1'), policy)).toEqual({
      path: '/images/a.ova?signed=1',
    });
  });

  it('refuses when the worker lacks the token, naming the variable and never a value', () => {
    const err = refusal(() => requestTarget(new URL('https://vendor.example.com/images/a.ova'), { ...policy, env: {} }));
    expect(err.message).toBe('source credential vendor needs VENDOR_SAS (or VENDOR_SAS_FILE), which this worker lacks');
    const bad = refusal(() =>
      requestTarget(new URL('https://vendor.example.com/images/a.ova'), { ...policy, env: { VENDOR_SAS: 'sig=SECRET#x' } }),
    );
    expect(bad.message).not.toContain('SECRET');
  });

  it('scrubs a token out of any message', () => {
    expect(scrub('connect failed for /a?sig=SECRET and sig=SECRET', 'sig=SECRET')).toBe('connect failed for /a?… and …');
  });

  const topology = (sources: unknown) => {
    const base = JSON.parse(fs.readFileSync(path.resolve(__dirname, '../../config/topology.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    return JSON.stringify({ ...base, sources });
  };

  it('are read from the topology', () => {
    expect(parseTopology(topology(credentials), {}).sources).toEqual(credentials);
    expect(parseTopology(fs.readFileSync(path.resolve(__dirname, '../../config/topology.json'), 'utf8'), {}).sources).toEqual([]);
  });

  it.each([
    [
      [
        { id: 'a', urlPrefix: 'https://h/x/', sasTokenEnv: 'A' },
        { id: 'a', urlPrefix: 'https://h/y/', sasTokenEnv: 'B' },
      ],
      /unique/,
    ],
    [[{ id: 'a', urlPrefix: 'https://h/x', sasTokenEnv: 'A' }], /ending in "\/"/],
    [[{ id: 'a', urlPrefix: 'https://h/x/?sig=1', sasTokenEnv: 'A' }], /without credentials, query/],
    [[{ id: 'a', urlPrefix: 'https://u:p@h/x/', sasTokenEnv: 'A' }], /without credentials/],
    [[{ id: 'a', urlPrefix: 'ftp://h/x/', sasTokenEnv: 'A' }], /http\(s\)/],
    [[{ id: 'a', urlPrefix: 'not a url', sasTokenEnv: 'A' }], /not a URL/],
    [[{ id: 'a', urlPrefix: 'https://h/x/', sasTokenEnv: 'sig=abc' }], /environment variable/],
  ])('refuses sources %j', (sources, message) => {
    expect(() => parseTopology(topology(sources), {})).toThrow(message);
  });
});
