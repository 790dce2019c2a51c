import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { checkTaskTarget, loadAgentVcenter, parseThumbprint, type AgentVcenter } from '../../src/sddc/agent-vcenter';
import type { VcenterTrust } from '../../src/sddc/agent-vcenter';
import { VimSession } from '../../src/sddc/vim-soap';
import { VsphereRest } from '../../src/sddc/vsphere-rest';
import { tempDir } from '../images/build';

const dir = tempDir('vmhub-agent-vc-');
const file = (name: string, text: string) => {
  const p = path.join(dir, name);
  fs.writeFileSync(p, text);
  return p;
};
const USER = file('user', 'svc-vmhub@vsphere.local\n');
const PASS = file('pass', 'pw-Zq81\n');
const PEM = file('ca.pem', '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
const login = { VMHUB_VCENTER_USERNAME_FILE: USER, VMHUB_VCENTER_PASSWORD_FILE: PASS };

describe("an agent's own vCenter configuration", () => {
  it('is absent without VMHUB_VCENTER_URL, and the agent then refuses content-library tasks naming what to set', () => {
    expect(loadAgentVcenter({})).toBeUndefined();
    const refusal = () => checkTaskTarget({ kind: 'content-library', vcenter: 'https://vc.example.com/' }, 'east-1', undefined);
    expect(refusal).toThrow(expect.objectContaining({ type: 'VcenterNotConfigured' }));
    expect(refusal).toThrow(
      /set VMHUB_VCENTER_URL.*VMHUB_VCENTER_CA_FILE.*VMHUB_VCENTER_USERNAME_FILE and VMHUB_VCENTER_PASSWORD_FILE/,
    );
  });

  it('reads the URL, a CA file or a pinned thumbprint, and the login from files', () => {
    expect(loadAgentVcenter({ VMHUB_VCENTER_URL: 'https://vc.example.com', VMHUB_VCENTER_CA_FILE: PEM, ...login })).toEqual({
      url: 'https://vc.example.com/',
      tls: { kind: 'ca', ca: fs.readFileSync(PEM, 'utf8'), file: PEM },
      credentials: { username: 'svc-vmhub@vsphere.local', password: 'pw-Zq81' },
    });
    const pinned = loadAgentVcenter({
      VMHUB_VCENTER_URL: 'https://vc.example.com/',
      VMHUB_VCENTER_THUMBPRINT: `${'AB:'.repeat(31)}AB`,
      ...login,
    });
    expect(pinned?.tls).toEqual({ kind: 'thumbprint', sha256: 'ab'.repeat(32) });
    expect(loadAgentVcenter({ VMHUB_VCENTER_URL: 'https://vc.example.com/', ...login })?.tls).toEqual({ kind: 'system' });
    // vcsim on this machine: no certificate check, and its own login when none is given.
    expect(loadAgentVcenter({ VMHUB_VCENTER_URL: 'https://127.0.0.1:8989/', VMHUB_VCENTER_INSECURE_TLS: '1' })).toEqual({
      url: 'https://127.0.0.1:8989/',
      tls: { kind: 'insecure' },
      credentials: { username: 'user', password: 'pass' },
    });
  });

  it.each([
    [{ VMHUB_VCENTER_CA_FILE: PEM }, /VMHUB_VCENTER_CA_FILE given without VMHUB_VCENTER_URL/],
    [
      { VMHUB_VCENTER_URL: 'https://vc.example.com/', VMHUB_VCENTER_INSECURE_TLS: '1', ...login },
      /only for a vCenter on the loopback/,
    ],
    [{ VMHUB_VCENTER_URL: 'https://vc.example.com/', VMHUB_VCENTER_INSECURE_TLS: 'yes', ...login }, /must be 1 or 0/],
    [
      {
        VMHUB_VCENTER_URL: 'https://vc.example.com/',
        VMHUB_VCENTER_CA_FILE: PEM,
        VMHUB_VCENTER_THUMBPRINT: 'ab'.repeat(32),
        ...login,
      },
      /only one of/,
    ],
    [{ VMHUB_VCENTER_URL: 'https://vc.example.com/', VMHUB_VCENTER_THUMBPRINT: 'abc', ...login }, /64 hex digits/],
    [{ VMHUB_VCENTER_URL: 'https://vc.example.com/', VMHUB_VCENTER_CA_FILE: USER, ...login }, /holds no PEM certificate/],
    [{ VMHUB_VCENTER_URL: 'https://vc.example.com/' }, /set VMHUB_VCENTER_USERNAME_FILE and VMHUB_VCENTER_PASSWORD_FILE/],
    [{ VMHUB_VCENTER_URL: 'https://vc.example.com/', VMHUB_VCENTER_PASSWORD_FILE: PASS }, /both .* or neither/],
    [
      { VMHUB_VCENTER_URL: 'https://vc.example.com/', ...login, VMHUB_VCENTER_PASSWORD_FILE: path.join(dir, 'none') },
      /cannot read .*none \(ENOENT\)/,
    ],
    [{ VMHUB_VCENTER_URL: 'http://vc.example.com/', ...login }, /https unless it is on the loopback/],
    [{ VMHUB_VCENTER_URL: 'https://admin:pw@vc.example.com/', ...login }, /without credentials/],
  ])('refuses %j at start', (env, message) => {
    expect(() => loadAgentVcenter(env)).toThrow(message);
  });

  it('never puts what a login file holds into an error', () => {
    const env = { VMHUB_VCENTER_URL: 'https://vc.example.com/', VMHUB_VCENTER_CA_FILE: USER, ...login };
    expect(() => loadAgentVcenter(env)).toThrow(expect.objectContaining({ message: expect.not.stringContaining('svc-vmhub') }));
  });

  it('reads a thumbprint as vCenter and openssl print it', () => {
    expect(parseThumbprint(`sha256=${'0F:'.repeat(31)}0F`)).toBe('0f'.repeat(32));
    expect(parseThumbprint(` ${'c'.repeat(64)}\n`)).toBe('c'.repeat(64));
  });
});

describe('the match rule: a task runs only on the vCenter the agent holds', () => {
  const agent = (tls: VcenterTrust): AgentVcenter => ({
    url: 'https://vc.example.com/',
    tls,
    credentials: { username: 'u', password: 'p' },
  });
  const target = (over: Record<string, unknown> = {}) => ({
    kind: 'content-library',
    vcenter: 'https://vc.example.com',
    library: 'vmhub',
    ...over,
  });

  it('accepts the same vCenter, written either way, and ignores the login variable names of older targets', () => {
    const held = agent({ kind: 'ca', ca: '', file: PEM });
    expect(checkTaskTarget(target(), 'east-1', held)).toBe(held);
    expect(checkTaskTarget(target({ vcenter: 'HTTPS://VC.example.com:443/' }), 'east-1', held)).toBe(held);
    expect(
      checkTaskTarget(
        target({ usernameEnv: 'VMHUB_VC_WEST_1_USERNAME', passwordEnv: 'VMHUB_VC_WEST_1_PASSWORD' }),
        'east-1',
        held,
      ),
    ).toBe(held);
    // A loopback agent that trusts any certificate may run a target that says so.
    const local = { ...agent({ kind: 'insecure' }), url: 'https://127.0.0.1:8989/' };
    expect(checkTaskTarget(target({ vcenter: 'https://127.0.0.1:8989/', insecureTls: true }), 'east-1', local)).toBe(local);
  });

  it.each([
    [
      target({ vcenter: 'https://attacker.example.com/' }),
      /names the vCenter https:\/\/attacker\.example\.com\/, but this agent serves https:\/\/vc\.example\.com\//,
    ],
    [target({ vcenter: 'https://vc.example.com:8443/' }), /but this agent serves/],
    [target({ vcenter: 'http://vc.example.com/' }), /but this agent serves/],
    [target({ vcenter: 'https://user:pw@vc.example.com/' }), /names the vCenter https:\/\/vc\.example\.com\/, but/],
    [target({ vcenter: 42 }), /names the vCenter "42"/],
    [target({ insecureTls: true }), /asks to accept any certificate/],
    [undefined, /names the vCenter "undefined"/],
  ])('refuses %j as VcenterMismatch', (raw, message) => {
    const refusal = () => checkTaskTarget(raw, 'east-1', agent({ kind: 'thumbprint', sha256: 'a'.repeat(64) }));
    expect(refusal).toThrow(expect.objectContaining({ type: 'VcenterMismatch' }));
    expect(refusal).toThrow(message);
    expect(refusal).toThrow(expect.objectContaining({ message: expect.not.stringMatching(/user:pw|\bpw\b/) }));
  });
});

/** A vCenter that refuses every login, echoing the user name in its refusals as some servers do. */
function refusingServer(status: number): http.Server {
  return http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const basic = Buffer.from((req.headers.authorization ?? '').replace(/^Basic /, ''), 'base64').toString();
      if (req.url === '/sdk' && body.includes('RetrieveServiceContent')) {
        res
          .writeHead(200, { 'content-type': 'text/xml' })
          .end(
            '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><RetrieveServiceContentResponse xmlns="urn:vim25"><returnval><sessionManager type="SessionManager">SessionManager</sessionManager></returnval></RetrieveServiceContentResponse></soapenv:Body></soapenv:Envelope>',
          );
      } else if (req.url === '/sdk') {
        const user = /<userName>(.*)<\/userName><password>(.*)<\/password>/.exec(body);
        res
          .writeHead(500, { 'content-type': 'text/xml' })
          .end(
            `<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>incorrect user name ${user?.[1]} or password ${user?.[2]}</faultstring><detail><InvalidLoginFault xmlns="urn:vim25" xsi:type="InvalidLogin"></InvalidLoginFault></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>`,
          );
      } else {
        res.writeHead(status, { 'content-type': 'application/json' }).end(
          JSON.stringify({
            type: 'com.vmware.vapi.std.errors.unauthenticated',
            value: { messages: [{ default_message: `login of ${basic} refused` }] },
          }),
        );
      }
    });
  });
}

describe('a failed login names neither the user nor the password', () => {
  const credentials = { username: 'admin@west', password: 'Wpw-7731' };
  const trust: VcenterTrust = { kind: 'system' };
  const leaks = (err: unknown) => `${(err as Error).message}\n${(err as Error).stack}`;

  it.each([401, 403, 500, 503])('REST answering %i', async (status) => {
    const server = refusingServer(status);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/`;
      const err = await VsphereRest.login(url, credentials, { trust }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(Error);
      expect(leaks(err)).not.toMatch(/admin@west|Wpw-7731/);
      if (status < 500)
        expect(err).toMatchObject({ type: 'unauthenticated', message: expect.stringMatching(/refused the agent's login/) });
    } finally {
      server.close();
    }
  });

  it('SOAP, whose fault echoes both', async () => {
    const server = refusingServer(401);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/`;
      const err = await VimSession.login(url, credentials, { trust }).catch((e: unknown) => e);
      expect(err).toMatchObject({
        type: 'InvalidLogin',
        message: expect.stringMatching(/^Login failed: incorrect user name … or password …$/),
      });
      expect(leaks(err)).not.toMatch(/admin@west|Wpw-7731/);
    } finally {
      server.close();
    }
  });

  it('an unreachable vCenter', async () => {
    const err = await VsphereRest.login('http://127.0.0.1:1/', credentials, { trust }).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/unreachable: ECONNREFUSED/);
    expect(leaks(err)).not.toMatch(/admin@west|Wpw-7731/);
  });
});

describe('a pinned certificate', () => {
  let server: https.Server;
  let url: string;
  let thumbprint: string;
  const logins: string[] = [];

  beforeAll(async () => {
    const key = path.join(dir, 'key.pem');
    const cert = path.join(dir, 'cert.pem');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-keyout',
        key,
        '-out',
        cert,
        '-days',
        '1',
        '-subj',
        '/CN=vcsim',
      ],
      { stdio: 'ignore' },
    );
    const fingerprint = execFileSync('openssl', ['x509', '-in', cert, '-noout', '-fingerprint', '-sha256'], { encoding: 'utf8' });
    thumbprint = parseThumbprint(fingerprint.split('=')[1]);
    server = https.createServer({ key: fs.readFileSync(key), cert: fs.readFileSync(cert) }, (req, res) => {
      logins.push(req.headers.authorization ?? '');
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ value: 'session-1' }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `https://127.0.0.1:${(server.address() as { port: number }).port}/`;
  });
  afterAll(() => new Promise((r) => server.close(r)));

  it('lets the login through to the certificate it names, and sends nothing to another', async () => {
    const credentials = { username: 'u', password: 'p' };
    const other = await VsphereRest.login(url, credentials, { trust: { kind: 'thumbprint', sha256: 'e'.repeat(64) } }).catch(
      (e: unknown) => e,
    );
    expect((other as Error).message).toMatch(/not the pinned one/);
    const untrusted = await VsphereRest.login(url, credentials, { trust: { kind: 'system' } }).catch((e: unknown) => e);
    expect((untrusted as Error).message).toMatch(/unreachable/);
    expect(logins).toEqual([]);
    const rest = await VsphereRest.login(url, credentials, { trust: { kind: 'thumbprint', sha256: thumbprint } });
    rest.http.close();
    expect(logins).toEqual([`Basic ${Buffer.from('u:p').toString('base64')}`]);
  });
});
