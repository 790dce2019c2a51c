import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { createOperatorCheckActivities } from '../../src/activities/operator-check';
import type { Config } from '../../src/config';
import { findOperatorCheck, runOperatorCheck, type OperatorCheckSpec } from '../../src/deploy/operator-check';
import type { OperatorCheckInput } from '../../src/shared/health-gate';
import { tempDir } from '../images/build';
import { typedError } from './typed-error';

const input: OperatorCheckInput = {
  check: 'smoke',
  sddc: 'east-1',
  image: 'edge',
  version: '1.0.0',
  item: {
    kind: 'content-library',
    vcenter: 'https://vc.example.com/',
    library: 'vmhub',
    itemId: 'item-1',
    itemName: 'edge-1.0.0',
  },
  vm: 'vm-42',
};
const request = { sddc: 'east-1', image: 'edge', version: '1.0.0', item: input.item, vm: 'vm-42' };

function checksFile(checks: unknown): string {
  const file = path.join(tempDir('vmhub-checks-'), 'checks.json');
  fs.writeFileSync(file, JSON.stringify(checks));
  return file;
}

/** A node script as a check's command: no shell, the program and its arguments. */
const node = (script: string): OperatorCheckSpec => ({ command: [process.execPath, '-e', script], timeoutSeconds: 10 });

describe('operator checks by name', () => {
  it('finds a check the file defines; an unknown name, or no file, is UnknownOperatorCheck', () => {
    const file = checksFile({ smoke: { url: 'https://checks.example.com/smoke' }, probe: { command: ['/usr/bin/true'] } });
    expect(findOperatorCheck(file, 'probe')).toEqual({ command: ['/usr/bin/true'] });
    expect(typedError('UnknownOperatorCheck', () => findOperatorCheck(file, 'nope')).message).toBe(
      'no operator check named "nope" in VMHUB_OPERATOR_CHECKS_FILE; it defines smoke, probe',
    );
    expect(typedError('UnknownOperatorCheck', () => findOperatorCheck(file, 'constructor')).message).toMatch(/"constructor"/);
    expect(typedError('UnknownOperatorCheck', () => findOperatorCheck(undefined, 'smoke')).message).toMatch(
      /has no VMHUB_OPERATOR_CHECKS_FILE/,
    );
  });

  it.each([
    [{ a: { command: ['relative/prog'] } }, /the command must start with an absolute path/],
    [{ a: { url: 'http://checks.example.com/' } }, /url must be https \(http only on the loopback\)/],
    [{ a: { url: 'https://x.example/', command: ['/bin/true'] } }, /either a url or a command/],
    [{ a: { command: [] } }, /command must be a list of strings/],
    [{ a: { command: ['/bin/true'], timeoutSeconds: 0 } }, /timeoutSeconds must be a whole number/],
    [{ a: { command: ['/bin/true'], shell: true } }, /unknown field shell/],
    [{ 'a b': { command: ['/bin/true'] } }, /check name "a b"/],
    [[], /must be an object of checks by name/],
  ])('refuses a malformed checks file: %j', (checks, message) => {
    expect(typedError('InvalidInput', () => findOperatorCheck(checksFile(checks), 'a')).message).toMatch(message);
  });

  it('the control activity refuses an unknown name as a final UnknownOperatorCheck', async () => {
    const config = { operatorChecksFile: checksFile({ probe: { command: ['/bin/true'] } }) } as Config;
    const { runOperatorCheck: activity } = createOperatorCheckActivities({ config });
    const err = await new MockActivityEnvironment({}, { logger: new DefaultLogger('ERROR') })
      .run(activity, input)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect(err).toMatchObject({ type: 'UnknownOperatorCheck', nonRetryable: true });
  });
});

describe('an HTTP operator check', () => {
  let server: http.Server;
  let url: string;
  const seen: Array<{ path?: string; body: unknown }> = [];
  const answers: Record<string, (res: http.ServerResponse) => void> = {
    '/pass': (res) => res.writeHead(200).end(),
    '/refuse': (res) =>
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ pass: false, reason: 'disk full' })),
    '/down': (res) => res.writeHead(503).end('{"pass": true}'),
    '/long': (res) => res.writeHead(200).end(JSON.stringify({ reason: 'x'.repeat(1000) })),
    '/hang': () => undefined,
  };

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        seen.push({ path: req.url, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) });
        answers[req.url ?? '']?.(res);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  it('passes on 2xx, posting the SDDC, the image, the item and the VM as JSON', async () => {
    expect(await runOperatorCheck({ url: `${url}/pass` }, input)).toEqual({
      check: 'operator',
      passed: true,
      detail: 'smoke: HTTP 200 OK',
    });
    expect(seen.find((s) => s.path === '/pass')?.body).toEqual(request);
  });

  it('fails on an answer of pass false, with its reason, and on a status other than 2xx', async () => {
    expect(await runOperatorCheck({ url: `${url}/refuse` }, input)).toEqual({
      check: 'operator',
      passed: false,
      detail: 'smoke: disk full',
    });
    expect(await runOperatorCheck({ url: `${url}/down` }, input)).toEqual({
      check: 'operator',
      passed: false,
      detail: 'smoke: HTTP 503 Service Unavailable',
    });
  });

  it('keeps a long reason short', async () => {
    const { detail } = await runOperatorCheck({ url: `${url}/long` }, input);
    expect(detail.length).toBe(300);
    expect(detail).toMatch(/^smoke: x+…$/);
  });

  it('fails when the check does not answer in time, or cannot be reached', async () => {
    expect(await runOperatorCheck({ url: `${url}/hang`, timeoutSeconds: 1 }, input)).toEqual({
      check: 'operator',
      passed: false,
      detail: 'smoke: timed out after 1 s',
    });
    const closed = http.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    expect(await runOperatorCheck({ url: `http://127.0.0.1:${port}/` }, input)).toEqual({
      check: 'operator',
      passed: false,
      detail: 'smoke: no answer: ECONNREFUSED',
    });
  });
});

describe('a command operator check', () => {
  it('passes on exit 0 with its last line as the detail; it reads the request on stdin and in VMHUB_CHECK_*', async () => {
    const script = `let s='';process.stdin.on('data',c=>s+=c).on('end',()=>{const r=JSON.parse(s);
      console.log('checking');console.log(r.vm+' '+r.item.itemName+' '+process.env.VMHUB_CHECK_SDDC+' '+process.env.VMHUB_CHECK_ITEM_ID);});`;
    expect(await runOperatorCheck(node(script), input)).toEqual({
      check: 'operator',
      passed: true,
      detail: 'smoke: vm-42 edge-1.0.0 east-1 item-1',
    });
  });

  it('fails on another exit code; the worker’s own environment is not passed on', async () => {
    process.env.VMHUB_TEST_WORKER_SECRET = 'not-for-checks';
    try {
      const script = `console.error('secret=' + (process.env.VMHUB_TEST_WORKER_SECRET ?? 'none')); process.exit(3);`;
      expect(await runOperatorCheck(node(script), input)).toEqual({
        check: 'operator',
        passed: false,
        detail: 'smoke: secret=none',
      });
    } finally {
      delete process.env.VMHUB_TEST_WORKER_SECRET;
    }
    expect(await runOperatorCheck(node('process.exit(2)'), input)).toEqual({
      check: 'operator',
      passed: false,
      detail: 'smoke: exited 2',
    });
  });

  it('fails when it runs past its timeout, and when the program cannot be started', async () => {
    expect(await runOperatorCheck({ ...node('setTimeout(() => undefined, 60000)'), timeoutSeconds: 1 }, input)).toEqual({
      check: 'operator',
      passed: false,
      detail: 'smoke: timed out after 1 s',
    });
    const missing = await runOperatorCheck({ command: ['/nonexistent/vmhub-check'] }, input);
    expect(missing).toMatchObject({
      passed: false,
      detail: expect.stringMatching(/^smoke: could not start: spawn \/nonexistent\/vmhub-check ENOENT/),
    });
  });
});
