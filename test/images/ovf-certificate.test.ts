import { sign, X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { createInspector } from '../../src/images/inspect';
import { refuseUnreferenced, type OvaMetadata } from '../../src/images/ova';
import { checkManifestSignature, judgeChain, loadTrustedCas, parseOvfCertificate } from '../../src/images/ovf-certificate';
import { VmhubError } from '../../src/shared/errors';
import { describeCertificate, ovfPolicyRefusal } from '../../src/shared/ovf-policy';
import { ovaMembers } from '../../src/sddc/package-files';
import { archive, filler, manifestLine, tempDir, type Member } from './build';
import {
  certificateFile,
  makeCertificates,
  makeTestPki,
  manifestOf,
  signedMembers,
  smallDescriptor,
  smallPackage,
  type TestPki,
} from './pki';

/** OVF certificates: the signature over the manifest, the chain judged against trusted CAs, and what a policy makes of it. */
let pki: TestPki;
beforeAll(() => {
  pki = makeTestPki();
});

const ovf = { name: 'a.ovf', bytes: smallDescriptor };
const disk = { name: 'disk.vmdk', bytes: filler(5000, 2) };
const descriptor = smallDescriptor;
const unsigned = (): Member[] => smallPackage();

async function inspect(members: Member[], trustedCas: string[] = [pki.trustedRoot]): Promise<OvaMetadata> {
  const inspector = createInspector('ova', { trustedCas });
  await inspector.write(archive(members));
  const m = await inspector.finish();
  if (m.kind !== 'ova') throw new Error('not an OVA');
  return m;
}

async function refusal(p: Promise<unknown> | (() => unknown), type: string): Promise<VmhubError> {
  const err = await (typeof p === 'function' ? Promise.resolve().then(p) : p).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(VmhubError);
  expect((err as VmhubError).type).toBe(type);
  return err as VmhubError;
}

describe('an OVF certificate file', () => {
  const mf = manifestOf([ovf, disk]);

  it('signed by a certificate under a trusted CA (through an intermediate) is verified, with subject and expiry', () => {
    const cert = parseOvfCertificate(certificateFile(pki.trusted, 'a.mf', mf.bytes), 'a.cert');
    expect(cert.chain).toHaveLength(2);
    expect(() => checkManifestSignature(cert, 'a.cert', mf)).not.toThrow();
    const verdict = judgeChain(cert.chain, [new X509Certificate(pki.trustedRoot)]);
    expect(verdict).toMatchObject({
      status: 'verified',
      subject: 'O=vmhub tests, CN=publisher',
      issuer: expect.stringContaining('CN=intermediate'),
    });
    expect(new Date(verdict.notAfter!).getTime()).toBe(new Date(cert.chain[0].validTo).getTime());
  });

  it('signed under a CA nobody trusts is untrusted, and so is any chain while no CA is configured', () => {
    const stranger = parseOvfCertificate(certificateFile(pki.untrusted, 'a.mf', mf.bytes), 'a.cert');
    checkManifestSignature(stranger, 'a.cert', mf);
    expect(judgeChain(stranger.chain, [new X509Certificate(pki.trustedRoot)])).toMatchObject({
      status: 'untrusted',
      subject: 'O=vmhub tests, CN=stranger',
      reason: expect.stringMatching(/no trusted CA issued it/),
    });
    const trusted = parseOvfCertificate(certificateFile(pki.trusted, 'a.mf', mf.bytes), 'a.cert');
    expect(judgeChain(trusted.chain, []).reason).toMatch(/none is configured/);
  });

  it('fails once a certificate of the chain has expired, or when one is not issued by the next', () => {
    const cert = parseOvfCertificate(certificateFile(pki.trusted, 'a.mf', mf.bytes), 'a.cert');
    const later = new Date(Date.now() + 365 * 24 * 3600 * 1000);
    expect(judgeChain(cert.chain, [new X509Certificate(pki.trustedRoot)], later)).toMatchObject({
      status: 'failed',
      reason: expect.stringMatching(/certificate #1 .* is valid from/),
    });
    const spliced = [new X509Certificate(pki.untrusted.chain[0]), cert.chain[1]];
    expect(judgeChain(spliced, [new X509Certificate(pki.trustedRoot)])).toMatchObject({
      status: 'failed',
      reason: expect.stringMatching(/^certificate #1 is not issued by the next one in the file: #2 did not sign it/),
    });
  });

  it.each([
    [
      'a signature of other bytes',
      (b: Buffer) => certificateFile(pki.trusted, 'a.mf', Buffer.concat([b, Buffer.from('x')])),
      /not of "a.mf"/,
    ],
    ['a signature of another manifest', (b: Buffer) => certificateFile(pki.trusted, 'b.mf', b), /signs "b.mf"/],
    [
      'a flipped signature digit',
      (b: Buffer) =>
        Buffer.from(
          certificateFile(pki.trusted, 'a.mf', b)
            .toString()
            .replace(/= (.)/, (_, c) => `= ${c === '0' ? '1' : '0'}`),
        ),
      /not of "a.mf"|cannot be checked/,
    ],
    [
      'no signature line',
      (b: Buffer) => Buffer.from(certificateFile(pki.trusted, 'a.mf', b).toString().replace(/^.*\n/, '')),
      /does not start/,
    ],
    ['no certificate', () => Buffer.from('SHA256(a.mf)= 00ff\n'), /holds no PEM certificate/],
    [
      'text after the chain',
      (b: Buffer) => Buffer.concat([certificateFile(pki.trusted, 'a.mf', b), Buffer.from('junk\n')]),
      /text other than/,
    ],
    [
      'a certificate that does not parse',
      () => Buffer.from('SHA256(a.mf)= 00ff\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'),
      /does not parse/,
    ],
  ])('with %s is CertificateInvalid', async (_, make, message) => {
    const err = await refusal(
      () => checkManifestSignature(parseOvfCertificate(make(mf.bytes), 'a.cert'), 'a.cert', mf),
      'CertificateInvalid',
    );
    expect(err.message).toMatch(message);
  });
});

describe('a chain judged for its algorithms and usage limits', () => {
  const CA = ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign'];
  const LEAF = ['basicConstraints=CA:FALSE', 'keyUsage=critical,digitalSignature'];
  let made: Map<string, { key: string; pem: string }>;
  beforeAll(() => {
    made = makeCertificates([
      { name: 'root', key: 'rsa', extensions: CA },
      { name: 'leaf', issuer: 'root', extensions: LEAF },
      { name: 'md5-leaf', issuer: 'root', digest: 'md5', extensions: LEAF },
      { name: 'sha1-leaf', issuer: 'root', digest: 'sha1', extensions: LEAF },
      { name: 'small-key', issuer: 'root', key: 'rsa1024', extensions: LEAF },
      { name: 'no-signing', issuer: 'root', extensions: ['basicConstraints=CA:FALSE', 'keyUsage=critical,keyAgreement'] },
      {
        name: 'no-certsign-ca',
        issuer: 'root',
        extensions: ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,digitalSignature'],
      },
      { name: 'under-no-certsign', issuer: 'no-certsign-ca', extensions: LEAF },
      {
        name: 'not-a-ca',
        issuer: 'root',
        extensions: ['basicConstraints=CA:FALSE', 'keyUsage=critical,digitalSignature,keyCertSign'],
      },
      { name: 'under-not-a-ca', issuer: 'not-a-ca', extensions: LEAF },
      {
        name: 'pathlen0',
        issuer: 'root',
        extensions: ['basicConstraints=critical,CA:TRUE,pathlen:0', 'keyUsage=critical,keyCertSign'],
      },
      { name: 'under-pathlen0', issuer: 'pathlen0', extensions: LEAF },
      { name: 'sub-ca', issuer: 'pathlen0', extensions: CA },
      { name: 'under-sub-ca', issuer: 'sub-ca', extensions: LEAF },
    ]);
  });
  const cert = (name: string) => new X509Certificate(made.get(name)!.pem);
  const judge = (names: string[], trusted = ['root']) => judgeChain(names.map(cert), trusted.map(cert));

  it('verifies a chain within its limits: a leaf allowed to sign, under CAs allowed to issue at their depth', () => {
    expect(judge(['leaf'])).toMatchObject({ status: 'verified' });
    expect(judge(['under-pathlen0', 'pathlen0'])).toMatchObject({ status: 'verified' });
  });

  it.each([
    [['md5-leaf'], /#1 .*CN=md5-leaf.* is signed with md5WithRSAEncryption/],
    [['sha1-leaf'], /#1 .* is signed with sha1WithRSAEncryption/],
    [['small-key'], /#1 .* has a 1024-bit RSA key \(under 2048\)/],
    [['no-signing'], /#1 has a keyUsage that does not allow digitalSignature/],
    [['under-no-certsign', 'no-certsign-ca'], /#2 has a keyUsage that does not allow keyCertSign/],
    [['under-not-a-ca', 'not-a-ca'], /#2 is not a CA/],
    [['under-sub-ca', 'sub-ca', 'pathlen0'], /#3 allows 0 CA certificate\(s\) below it, and the chain has 1/],
  ])('fails %j', (names, reason) => {
    expect(judge(names)).toMatchObject({ status: 'failed', reason: expect.stringMatching(reason) });
  });

  it('does not let a trusted CA vouch beyond its own limits', () => {
    // The file stops below the trusted CA, which allows no CA under it.
    expect(judge(['under-sub-ca', 'sub-ca'], ['pathlen0'])).toMatchObject({ status: 'untrusted' });
    expect(judge(['under-not-a-ca'], ['not-a-ca'])).toMatchObject({ status: 'untrusted' });
    expect(judge(['under-pathlen0'], ['pathlen0'])).toMatchObject({ status: 'verified' });
  });

  it('records failed for a manifest signed with SHA-1, however good the chain', async () => {
    const members = unsigned();
    const mf = members[1];
    const line = `SHA1(a.mf)= ${sign('sha1', mf.bytes, pki.trusted.key).toString('hex')}\n`;
    const sha1Cert = { name: 'a.cert', bytes: Buffer.from(line + pki.trusted.chain.join('')) };
    const m = await inspect([members[0], mf, sha1Cert, members[2]]);
    expect(m.certificate).toMatchObject({ status: 'failed', reason: 'the manifest is signed with SHA-1' });
  });
});

describe('an OVA inspected with its certificate', () => {
  it('records verified, untrusted or none in its metadata', async () => {
    expect((await inspect(signedMembers(unsigned(), pki.trusted))).certificate).toMatchObject({ status: 'verified' });
    expect((await inspect(signedMembers(unsigned(), pki.untrusted))).certificate).toMatchObject({ status: 'untrusted' });
    const none = await inspect(unsigned());
    expect(none.certificate).toEqual({ status: 'none' });
    expect(none.archive.files.map((f) => f.role)).toEqual(['descriptor', 'manifest', 'file']);
  });

  it('fails as CertificateInvalid when the manifest was changed after signing, or when there is no manifest', async () => {
    const signed = signedMembers(unsigned(), pki.trusted);
    // The disk and manifest are replaced consistently: only the signature can tell.
    const other = { name: 'disk.vmdk', bytes: filler(5000, 3) };
    const tampered = [signed[0], manifestOf([ovf, other]), signed[2], other];
    expect((await refusal(inspect(tampered), 'CertificateInvalid')).message).toMatch(/not of "a.mf"/);
    const withoutManifest = [ovf, signed[2], disk];
    expect((await refusal(inspect(withoutManifest), 'CertificateInvalid')).message).toMatch(/signs a manifest the package lacks/);
  });

  it('judges a certificate wherever it comes, and refuses two whose names differ only in case', async () => {
    const [ovfMember, mf, cert, diskMember] = signedMembers(unsigned(), pki.trusted);
    const first = await inspect([cert, ovfMember, mf, diskMember]);
    expect(first.certificate).toMatchObject({ status: 'verified' });
    expect(first.archive.files.find((f) => f.name === 'a.cert')?.role).toBe('certificate');
    const tampered = { name: 'a.cert', bytes: certificateFile(pki.trusted, 'a.mf', Buffer.from('other')) };
    expect((await refusal(inspect([tampered, ovfMember, mf, diskMember]), 'CertificateInvalid')).message).toMatch(
      /not of "a.mf"/,
    );
    const twice = [ovfMember, mf, cert, { name: 'a.CERT', bytes: cert.bytes }, diskMember];
    expect((await refusal(inspect(twice), 'CertificateInvalid')).message).toMatch(/holds 2 certificates: "a.cert", "a.CERT"/);
    const early = [{ name: 'a.CERT', bytes: cert.bytes }, ovfMember, mf, cert, diskMember];
    expect((await refusal(inspect(early), 'CertificateInvalid')).message).toMatch(/holds 2 certificates/);
    // Another package's certificate is a stray member, refused at publish.
    const stray = await inspect([{ name: 'b.cert', bytes: cert.bytes }, ovfMember, mf, cert, diskMember]);
    expect(stray.certificate).toMatchObject({ status: 'verified' });
    expect((await refusal(() => refuseUnreferenced(stray), 'UnreferencedMember')).message).toMatch(/"b\.cert"/);
  });

  it('is refused at publish with UnreferencedMember when it holds a second descriptor or an unreferenced member', async () => {
    const second = await inspect([...unsigned(), { name: 'b.ovf', bytes: descriptor }]);
    expect((await refusal(() => refuseUnreferenced(second), 'UnreferencedMember')).message).toMatch(/"b\.ovf"/);
    const stray = await inspect([...unsigned(), { name: 'notes.txt', bytes: Buffer.from('x') }]);
    expect((await refusal(() => refuseUnreferenced(stray), 'UnreferencedMember')).message).toMatch(/"notes\.txt"/);
    const signed = await inspect(signedMembers(unsigned(), pki.trusted));
    expect(() => refuseUnreferenced(signed)).not.toThrow();
  });
});

describe('an OVF policy', () => {
  it('requires a manifest that lists every member, and a verified certificate', async () => {
    const none = await inspect(unsigned());
    const noManifest = await inspect([ovf, disk]);
    const untrusted = await inspect(signedMembers(unsigned(), pki.untrusted));
    const signed = await inspect(signedMembers(unsigned(), pki.trusted));
    const partial = await inspect([ovf, { name: 'a.mf', bytes: Buffer.from(manifestLine('sha256', 'a.ovf', descriptor)) }, disk]);
    expect(ovfPolicyRefusal({ requireManifest: true }, none)).toBeUndefined();
    expect(ovfPolicyRefusal({ requireManifest: true }, noManifest)).toBe('requires a manifest, and the image has none');
    expect(ovfPolicyRefusal({ requireManifest: true }, partial)).toMatch(/lists every member, and a\.mf lacks disk\.vmdk/);
    expect(ovfPolicyRefusal({ requireVerifiedCertificate: true }, none)).toMatch(
      /verified OVF certificate, and the image's is none/,
    );
    expect(ovfPolicyRefusal({ requireVerifiedCertificate: true }, untrusted)).toMatch(
      /the image's is untrusted \(subject O=vmhub tests, CN=stranger/,
    );
    expect(ovfPolicyRefusal({ requireManifest: true, requireVerifiedCertificate: true }, signed)).toBeUndefined();
    // A trusted signature over a manifest that leaves the disk out vouches for nothing the disk holds.
    const signedPartial = await inspect(
      signedMembers([ovf, { name: 'a.mf', bytes: Buffer.from(manifestLine('sha256', 'a.ovf', descriptor)) }, disk], pki.trusted),
    );
    expect(ovfPolicyRefusal({ requireVerifiedCertificate: true }, signedPartial)).toMatch(/a\.mf lacks disk\.vmdk/);
    expect(ovfPolicyRefusal({ requireVerifiedCertificate: true }, { kind: 'iso' })).toBeUndefined();
    expect(ovfPolicyRefusal({}, noManifest)).toBeUndefined();
    expect(describeCertificate({ status: 'none' })).toBe('none');
    // The verdict recorded at publish is judged again when the deploy is planned: past notAfter it verifies nothing.
    const expiry = new Date(signed.certificate.notAfter!);
    expect(ovfPolicyRefusal({ requireVerifiedCertificate: true }, signed, expiry)).toBeUndefined();
    expect(ovfPolicyRefusal({ requireVerifiedCertificate: true }, signed, new Date(expiry.getTime() + 1000))).toMatch(
      /the image's is not valid now \(verified \(subject O=vmhub tests, CN=publisher; expires /,
    );
    expect(ovfPolicyRefusal({ requireVerifiedCertificate: true }, { ...signed, certificate: { status: 'verified' } })).toMatch(
      /not valid now/,
    );
    expect(ovfPolicyRefusal({ requireManifest: true }, signed, new Date(expiry.getTime() + 1000))).toBeUndefined();
  });
});

describe('the trusted CA file', () => {
  it('is read as PEM certificates; a file holding anything else is InvalidInput', async () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, 'cas.pem'), pki.trustedRoot + pki.untrustedRoot);
    expect(await loadTrustedCas(path.join(dir, 'cas.pem'))).toHaveLength(2);
    expect(await loadTrustedCas(undefined)).toEqual([]);
    fs.writeFileSync(path.join(dir, 'bad.pem'), 'not a certificate');
    expect((await refusal(loadTrustedCas(path.join(dir, 'bad.pem')), 'InvalidInput')).message).toMatch(
      /VMHUB_OVF_TRUSTED_CA_FILE/,
    );
  });
});

describe('the files a library item gets from an OVA', () => {
  it('are the descriptor, its manifest and certificate and the files it references: never a second descriptor or a stray member', async () => {
    const members = [
      ...signedMembers(unsigned(), pki.trusted),
      { name: 'b.ovf', bytes: descriptor },
      { name: 'x.bin', bytes: Buffer.from('x') },
    ];
    const out = path.join(tempDir(), 'a.ova');
    fs.writeFileSync(out, archive(members));
    expect((await ovaMembers(out)).map((f) => f.name)).toEqual(['a.ovf', 'a.mf', 'a.cert', 'disk.vmdk']);
  });
});
