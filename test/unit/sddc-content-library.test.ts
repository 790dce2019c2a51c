import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { Readable } from 'node:stream';
import {
  compareItemFiles,
  planUploads,
  sessionToResume,
  type ItemFile,
  type SessionFile,
  type UpdateSession,
} from '../../src/sddc/content-library';
import { checkImportedItem } from '../../src/sddc/item-check';
import { ovaMembers, type LibraryFile } from '../../src/sddc/package-files';
import { parseObjects, soapReturn } from '../../src/sddc/vim-soap';
import { hashPool } from '../../src/storage/hashing';
import { redactPath, VsphereApiError, VsphereRest } from '../../src/sddc/vsphere-rest';
import { archive, filler, tempDir } from '../images/build';

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
const file = (name: string, body: string, offset = 0): LibraryFile => ({ name, offset, size: body.length, sha256: sha(body) });
const ovf = file('a.ovf', '<Envelope/>');
const disk = file('a-disk1.vmdk', 'disk bytes', 1024);
const SHA256 = (f: LibraryFile) => ({ algorithm: 'SHA256', checksum: f.sha256 });

describe('which files a resumed import sends', () => {
  it('sends everything to a new session', () => {
    expect(planUploads([ovf, disk], [], [])).toEqual({ skip: [], resend: [], add: [ovf, disk] });
  });

  it('skips a file the session holds READY with the expected SHA-256, resends one it is still waiting for', () => {
    const session: SessionFile[] = [
      { name: 'a.ovf', status: 'READY', checksum_info: SHA256(ovf), upload_endpoint: { uri: 'https://vc/cls/data/1/a.ovf' } },
      { name: 'a-disk1.vmdk', status: 'WAITING_FOR_TRANSFER', upload_endpoint: { uri: 'https://vc/cls/data/2/a-disk1.vmdk' } },
    ];
    expect(planUploads([ovf, disk], session, [])).toEqual({
      skip: [ovf],
      resend: [{ file: disk, endpoint: 'https://vc/cls/data/2/a-disk1.vmdk' }],
      add: [],
    });
  });

  it('sends again a READY file whose checksum the server does not report (vcsim) or that differs', () => {
    const session: SessionFile[] = [
      { name: 'a.ovf', status: 'READY', upload_endpoint: { uri: 'u1' } },
      {
        name: 'a-disk1.vmdk',
        status: 'READY',
        checksum_info: { algorithm: 'SHA256', checksum: 'f'.repeat(64) },
        upload_endpoint: { uri: 'u2' },
      },
    ];
    expect(planUploads([ovf, disk], session, []).resend.map((r) => r.file)).toEqual([ovf, disk]);
  });

  it('skips a file the item already holds with the right size and SHA-256', () => {
    expect(planUploads([ovf, disk], [], [{ name: 'a-disk1.vmdk', size: disk.size, checksum_info: SHA256(disk) }])).toEqual({
      skip: [disk],
      resend: [],
      add: [ovf],
    });
    expect(planUploads([disk], [], [{ name: 'a-disk1.vmdk', size: disk.size }]).add).toEqual([disk]);
  });
});

describe('checks of a finished item', () => {
  it.each([
    [
      [
        { name: 'a.ovf', size: ovf.size },
        { name: 'a-disk1.vmdk', size: disk.size },
      ],
      [],
    ],
    [[{ name: 'a.ovf', size: ovf.size }], ['a-disk1.vmdk is missing']],
    [
      [
        { name: 'a.ovf', size: 3 },
        { name: 'a-disk1.vmdk', size: disk.size },
      ],
      [`a.ovf holds 3 bytes, not ${ovf.size}`],
    ],
    [
      [
        { name: 'a.ovf', size: ovf.size, checksum_info: { algorithm: 'SHA256', checksum: 'f'.repeat(64) } },
        { name: 'a-disk1.vmdk' },
      ],
      [`a.ovf has SHA-256 ${'f'.repeat(64)}, not ${ovf.sha256}`],
    ],
    // Sent twice, listed twice: the last listing counts.
    [
      [
        { name: 'a.ovf', size: 1 },
        { name: 'a.ovf', size: ovf.size },
        { name: 'a-disk1.vmdk', size: disk.size },
      ],
      [],
    ],
  ])('%j → %j', (itemFiles, problems) => {
    expect(compareItemFiles([ovf, disk], itemFiles).problems).toEqual(problems);
  });

  it('lists the files beyond the expected ones, and those whose SHA-256 only a read-back can check', () => {
    const cmp = compareItemFiles(
      [ovf, disk],
      [
        { name: 'a.ovf', size: ovf.size, checksum_info: SHA256(ovf) },
        { name: 'a-disk1.vmdk', size: disk.size },
        { name: 'b.ovf', size: 10 },
        { name: 'b.ovf', size: 11 },
      ],
    );
    expect(cmp).toEqual({ problems: [], extra: ['b.ovf'], unreported: [disk] });
  });

  it('after an import: an item holding an extra file is removed and the attempt fails; a whole one stays', async () => {
    const deleted: string[] = [];
    const library = (itemFiles: ItemFile[]) => ({
      itemFiles: async () => itemFiles,
      deleteItem: async (id: string) => void deleted.push(id),
    });
    const whole = [
      { name: 'a.ovf', size: ovf.size },
      { name: 'a-disk1.vmdk', size: disk.size },
    ];
    const item = { id: 'item-1', name: 'img-1.0.0' };
    await expect(checkImportedItem(library(whole), item, [ovf, disk])).resolves.toBeUndefined();
    expect(deleted).toEqual([]);
    await expect(checkImportedItem(library([...whole, { name: 'b.ovf', size: 10 }]), item, [ovf, disk])).rejects.toThrow(
      'item img-1.0.0 was removed to be made again: b.ovf is an extra descriptor',
    );
    expect(deleted).toEqual(['item-1']);
    await expect(checkImportedItem(library(whole.slice(0, 1)), item, [ovf, disk])).rejects.toThrow(/a-disk1\.vmdk is missing/);
    expect(deleted).toEqual(['item-1']);
  });
});

describe('which update session an import carries on with', () => {
  const s = (id: string, state: UpdateSession['state']): UpdateSession => ({ id, library_item_id: 'item', state });
  it.each([
    [[], {}, undefined, []],
    [[s('done', 'DONE'), s('open', 'ACTIVE')], {}, 'open', []],
    [[s('one', 'ACTIVE'), s('two', 'ACTIVE')], {}, 'one', ['two']],
    [[s('bad', 'ACTIVE'), s('good', 'ACTIVE')], { bad: [{ name: 'a.ovf', status: 'ERROR' }] }, 'good', ['bad']],
    [[s('bad', 'ACTIVE')], { bad: [{ name: 'a.ovf', status: 'ERROR' }] }, undefined, ['bad']],
  ] as Array<[UpdateSession[], Record<string, SessionFile[]>, string | undefined, string[]]>)(
    'of %j with files %j resumes %s',
    (sessions, files, resume, cancel) => {
      const choice = sessionToResume(sessions, new Map(Object.entries(files)));
      expect(choice.resume?.id).toBe(resume);
      expect(choice.cancel.map((c) => c.id)).toEqual(cancel);
    },
  );
});

describe('an OVA split into library files', () => {
  it('gives every member with its offset and SHA-256, in archive order', async () => {
    const descriptor =
      '<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">' +
      '<References><File ovf:href="app-disk1.vmdk" ovf:id="f1"/></References><VirtualSystem ovf:id="vm"/></Envelope>';
    const members = [
      { name: 'app.ovf', bytes: Buffer.from(descriptor) },
      { name: 'app.mf', bytes: Buffer.alloc(0) },
      { name: 'app-disk1.vmdk', bytes: filler(3 * 1024 * 1024 + 17, 3) },
    ];
    const out = path.join(tempDir(), 'app.ova');
    const bytes = archive(members);
    fs.writeFileSync(out, bytes);
    const files = await ovaMembers(out);
    expect(files.map((f) => [f.name, f.size, f.sha256])).toEqual(members.map((m) => [m.name, m.bytes.length, sha(m.bytes)]));
    for (const f of files) expect(sha(bytes.subarray(f.offset, f.offset + f.size))).toBe(f.sha256);
  });

  it("parses the descriptor on a hashing thread, not on the agent's event loop", async () => {
    const descriptor =
      '<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">' +
      '<References><File ovf:href="d.vmdk" ovf:id="f1"/></References><VirtualSystem ovf:id="vm"/></Envelope>';
    const out = path.join(tempDir(), 'threaded.ova');
    fs.writeFileSync(
      out,
      archive([
        { name: 'd.ovf', bytes: Buffer.from(descriptor) },
        { name: 'd.vmdk', bytes: Buffer.from('disk') },
        { name: 'stray.txt', bytes: Buffer.from('x') },
      ]),
    );
    const parse = jest.spyOn(hashPool(), 'descriptor');
    try {
      expect((await ovaMembers(out)).map((f) => f.name)).toEqual(['d.ovf', 'd.vmdk']);
      expect(parse).toHaveBeenCalledTimes(1);
      expect(parse.mock.calls[0][0].toString('utf8')).toBe(descriptor);
    } finally {
      parse.mockRestore();
    }
  });

  it('refuses a member in a folder: library files have plain names', async () => {
    const out = path.join(tempDir(), 'nested.ova');
    fs.writeFileSync(out, archive([{ name: 'disks/app.vmdk', bytes: Buffer.from('x') }]));
    await expect(ovaMembers(out)).rejects.toMatchObject({ type: 'InvalidImage', message: expect.stringMatching(/in a folder/) });
  });
});

describe('SOAP answers', () => {
  const envelope = (body: string) =>
    `<?xml version="1.0"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>${body}</soapenv:Body></soapenv:Envelope>`;

  it('reads objects, their values and references', async () => {
    const xml = envelope(
      '<RetrievePropertiesExResponse xmlns="urn:vim25"><returnval><objects><obj type="ClusterComputeResource">domain-c28</obj>' +
        '<propSet><name>name</name><val xsi:type="xsd:string">DC0_C0</val></propSet>' +
        '<propSet><name>resourcePool</name><val type="ResourcePool" xsi:type="ManagedObjectReference">resgroup-27</val></propSet>' +
        '</objects><token>next</token></returnval></RetrievePropertiesExResponse>',
    );
    expect(parseObjects(await soapReturn(xml, 'RetrievePropertiesEx'))).toEqual({
      objects: [
        {
          obj: { type: 'ClusterComputeResource', id: 'domain-c28' },
          props: { name: 'DC0_C0', resourcePool: 'ResourcePool:resgroup-27' },
        },
      ],
      token: 'next',
    });
  });

  it('turns a fault into an error with its kind', async () => {
    const xml = envelope(
      '<soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>Cannot complete login due to an incorrect user name or password.</faultstring>' +
        '<detail><InvalidLoginFault xmlns="urn:vim25" xsi:type="InvalidLogin"></InvalidLoginFault></detail></soapenv:Fault>',
    );
    await expect(soapReturn(xml, 'Login')).rejects.toMatchObject({
      type: 'InvalidLogin',
      message: expect.stringMatching(/^Login failed: Cannot complete login/),
    });
  });
});

describe('the REST client', () => {
  let server: http.Server;
  let base: string;
  const seen: Array<{ method?: string; url?: string; session?: string; host?: string; body: string }> = [];
  beforeAll(async () => {
    server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        seen.push({
          method: req.method,
          url: req.url,
          session: req.headers['vmware-api-session-id'] as string,
          host: req.headers.host,
          body,
        });
        const json = (status: number, value: unknown) =>
          res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(value));
        if (req.url === '/rest/com/vmware/cis/session' && req.method === 'POST') {
          if (req.headers.authorization !== `Basic ${Buffer.from('admin:s3cret').toString('base64')}`)
            return void res.writeHead(401).end();
          return json(200, { value: 'session-1234' });
        }
        if (req.url?.startsWith('/rest/com/vmware/content/library/item/update-session/id:')) {
          return json(400, {
            type: 'com.vmware.vapi.std.errors.not_allowed_in_current_state',
            value: { messages: [{ default_message: 'session is DONE' }] },
          });
        }
        if (req.method === 'PUT') return void res.writeHead(200).end();
        json(404, { type: 'com.vmware.vapi.std.errors.not_found', value: {} });
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as { port: number }).port}/`;
  });
  afterAll(() => new Promise((r) => server.close(r)));

  it('refuses a wrong login as unauthenticated', async () => {
    await expect(
      VsphereRest.login(base, { username: 'admin', password: 'wrong' }, { trust: { kind: 'system' } }),
    ).rejects.toMatchObject({
      type: 'unauthenticated',
      status: 401,
    });
  });

  it('sends the session only in its header, only to the vCenter it logged in to, and keeps it out of errors', async () => {
    const rest = await VsphereRest.login(base, { username: 'admin', password: 's3cret' }, { trust: { kind: 'system' } });
    try {
      // An upload endpoint naming another host still goes to this vCenter.
      await rest.upload(
        'https://elsewhere.example.com:9/cls/data/abc/a.ovf',
        3,
        () => Readable.from([Buffer.from('ovf')]),
        'a.ovf',
      );
      const put = seen.find((s) => s.method === 'PUT')!;
      expect(put).toMatchObject({ url: '/cls/data/abc/a.ovf', session: 'session-1234', host: new URL(base).host, body: 'ovf' });
      const err = await rest
        .post('/rest/com/vmware/content/library/item/update-session/id:secret-session?~action=complete')
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(VsphereApiError);
      expect((err as VsphereApiError).message).toBe(
        'POST /rest/com/vmware/content/library/item/update-session/id:…?~action=complete failed with HTTP 400 not_allowed_in_current_state: session is DONE',
      );
      expect((err as VsphereApiError).message).not.toMatch(/secret-session|session-1234/);
      expect(((await rest.get('/rest/nothing').catch((e: unknown) => e)) as VsphereApiError).notFound).toBe(true);
    } finally {
      await rest.logout();
    }
    expect(seen.filter((s) => s.session !== undefined).every((s) => s.session === 'session-1234')).toBe(true);
  });

  it.each([
    ['/rest/com/vmware/content/library/item/id:abc', '/rest/com/vmware/content/library/item/id:…'],
    ['/rest/x/file?update_session_id=abc&y=1', '/rest/x/file?update_session_id=…&y=1'],
    ['/rest/com/vmware/cis/data/abc/disk.vmdk', '/rest/com/vmware/cis/data/…'],
    ['/cls-data/4a3c1f0e-session/photon.ova', '/cls-data/…'],
  ])('redacts %s', (raw, redacted) => {
    expect(redactPath(raw)).toBe(redacted);
  });
});
