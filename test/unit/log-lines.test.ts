import { configuredLevel, logLine } from '../../src/observability/log';
import { REDACTED, redact, redactText } from '../../src/observability/redact';
import { runFields } from '../../src/shared/run-fields';

const AZURITE_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';
const SIG = 'Zm9vYmFyYmF6cXV4%2Bk3y%3D';

describe('redactText', () => {
  it.each([
    ['a SAS URL', `GET https://acct.blob.core.windows.net/vm-images/a.ova?sv=2023-11-03&sr=c&sp=rl&sig=${SIG}&se=2030`, SIG],
    ['a SAS token alone', `sv=2023-11-03&sr=c&sig=${SIG}`, SIG],
    [
      'a connection string',
      `DefaultEndpointsProtocol=https;AccountName=devstoreaccount1;AccountKey=${AZURITE_KEY};EndpointSuffix=core.windows.net`,
      AZURITE_KEY,
    ],
    ['a SharedAccessSignature setting', `BlobEndpoint=https://a/;SharedAccessSignature=sv=2023&sig=${SIG}`, SIG],
    ['password=', 'login failed for password=hunter2-Secret', 'hunter2-Secret'],
    ['a JSON password', '{"username":"administrator@vsphere.local","password":"s3cr3t!"}', 's3cr3t!'],
    ['an Authorization header', 'Authorization: Basic YWRtaW46czNjcjN0', 'YWRtaW46czNjcjN0'],
    ['a bearer token', 'sent Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc', 'eyJhbGciOiJIUzI1NiJ9'],
    ['a URL with a login', 'cannot reach mongodb://vmhub:p4ssw0rd@127.0.0.1:27017/vmhub', 'p4ssw0rd'],
    [
      'a SAS URL encoded in another URL',
      `copy source https%3A%2F%2Fa.blob%2Fc%2Fb%3Fsv%3D2023%26sig%3D${SIG}%26se%3D2030 refused`,
      SIG,
    ],
    ['a SAS URL as Go writes it in JSON', `"url":"https://a/c/b?sv=2023\\u0026sig=${SIG}\\u0026se=2030"`, SIG],
    ['an encoded AccountKey', `AccountName%3Ddev%3BAccountKey%3D${AZURITE_KEY}`, AZURITE_KEY],
    ['a shared-key Authorization header', 'Authorization: SharedKey devstoreaccount1:c2lnbmF0dXJl', 'c2lnbmF0dXJl'],
    ['an escaped JSON password', '{\\"user\\":\\"a\\",\\"password\\":\\"s3cr3t!\\"}', 's3cr3t!'],
  ])('removes %s', (_, text, secret) => {
    const out = redactText(text);
    expect(out).not.toContain(secret);
    expect(out).toContain(REDACTED);
  });

  it.each([
    'staged 12 blocks of edge@1.0.0 to east-primary',
    'the password is not set: set VMHUB_VCENTER_PASSWORD',
    'https://127.0.0.1:10000/devstoreaccount1/vm-images/edge/1.0.0/edge.ova',
    'signature did not verify (sig check)',
    'block 12 of blocksig=abc sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08',
  ])('leaves %j as it is', (text) => {
    expect(redactText(text)).toBe(text);
  });
});

describe('redact', () => {
  it('replaces the values of keys named as credentials, at any depth, and keeps numbers and booleans', () => {
    const out = redact({
      image: 'edge',
      accountKey: AZURITE_KEY,
      nested: { sasToken: `sig=${SIG}`, clientSecret: 'x', Authorization: 'Basic abc', headers: [{ cookie: 'a=b' }] },
      password: { value: 'p' },
      maxTokens: 4,
      hasKey: true,
      keyId: 'SHA256:abc',
    });
    expect(out).toEqual({
      image: 'edge',
      accountKey: REDACTED,
      nested: { sasToken: REDACTED, clientSecret: REDACTED, Authorization: REDACTED, headers: [{ cookie: REDACTED }] },
      password: REDACTED,
      maxTokens: 4,
      hasKey: true,
      keyId: 'SHA256:abc',
    });
  });

  it('keeps keys that name what a line is about: a key, a tap key, a public key, a digest', () => {
    const fields = {
      key: { image: 'edge', version: '1.0.0', sddc: 'east-1' },
      tapKey: 'edge@1.0.0',
      blockKey: 'AAAAAQ==',
      publicKey: 'MCowBQYDK2VwAyEA',
      sha256: '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08',
      sddc: 'east-1',
    };
    expect(redact(fields)).toEqual(fields);
  });

  it('reduces errors at any depth to name, type and message, and bytes to their length', () => {
    const err = Object.assign(new Error(`403 on https://a/b?sig=${SIG}`), { request: { url: `https://a/b?sig=${SIG}` } });
    const out = redact({ problems: [{ replica: 'west', error: err }], body: Buffer.from(AZURITE_KEY), raw: new Uint8Array(3) });
    expect(JSON.stringify(out)).not.toContain(SIG);
    expect(out).toEqual({
      problems: [{ replica: 'west', error: { error: 'Error', message: `403 on https://a/b?sig=${REDACTED}` } }],
      body: `[${AZURITE_KEY.length} bytes]`,
      raw: '[3 bytes]',
    });
  });

  it('writes a cycle once, and an object met twice beside itself twice', () => {
    const shared = { sddc: 'east-1' };
    const cyclic: Record<string, unknown> = { shared, again: shared };
    cyclic.self = cyclic;
    expect(redact(cyclic)).toEqual({ shared, again: shared, self: '[circular]' });
  });
});

describe('logLine', () => {
  it('is one JSON object: time, level, msg, then the fields, redacted, with errors reduced to name, type and message', () => {
    const err = Object.assign(new Error(`403 on https://a/b?sig=${SIG}`), { type: 'SourceUnreachable' });
    const line = logLine({
      level: 'WARN',
      message: `copy failed for AccountKey=${AZURITE_KEY}`,
      meta: { image: 'edge', version: '1.0.0', error: err, at: new Date(0), bytes: 10n },
      timestampNanos: 1_700_000_000_000_000_000n,
    });
    expect(line).not.toContain('\n');
    expect(line).not.toContain(AZURITE_KEY);
    expect(line).not.toContain(SIG);
    const parsed = JSON.parse(line) as Record<string, unknown>;
    expect(Object.keys(parsed).slice(0, 3)).toEqual(['time', 'level', 'msg']);
    expect(parsed).toMatchObject({
      time: '2023-11-14T22:13:20.000Z',
      level: 'warn',
      msg: `copy failed for AccountKey=${REDACTED}`,
      image: 'edge',
      version: '1.0.0',
      error: { error: 'Error', type: 'SourceUnreachable', message: `403 on https://a/b?sig=${REDACTED}` },
      at: '1970-01-01T00:00:00.000Z',
      bytes: '10',
    });
  });
});

describe('configuredLevel', () => {
  it.each([
    [undefined, 'INFO'],
    ['debug', 'DEBUG'],
    ['WARN', 'WARN'],
    ['loud', 'INFO'],
  ])('reads VMHUB_LOG_LEVEL=%s as %s', (value, level) => {
    expect(configuredLevel(value === undefined ? {} : { VMHUB_LOG_LEVEL: value })).toBe(level);
  });
});

describe('runFields', () => {
  it.each([
    [
      'a deploy to one SDDC',
      { image: 'edge', version: '1.0.0', sddc: 'east-1', sha256: 'ab', sources: [] },
      { image: 'edge', version: '1.0.0', sddc: 'east-1' },
    ],
    [
      'a replication',
      { image: 'edge', version: '1.0.0', location: 'west-replica' },
      { image: 'edge', version: '1.0.0', location: 'west-replica' },
    ],
    [
      'a staged range',
      { source: 'a.iso', location: { storage: 'east-primary', container: 'c', blob: 'b' } },
      { location: 'east-primary' },
    ],
    [
      'a fleet deploy (many SDDCs: none named)',
      { image: 'edge', version: '2.0.0', sddcs: ['east-1', 'west-1'] },
      { image: 'edge', version: '2.0.0' },
    ],
    ['a health check token', 'token', {}],
    ['no input', undefined, {}],
    ['fields that are not names', { image: 3, version: { v: 1 }, sddc: null }, {}],
  ])('%s', (_, input, fields) => {
    expect(runFields(input)).toEqual(fields);
  });
});
