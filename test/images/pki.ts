import { execFileSync } from 'node:child_process';
import { sign } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { archive, filler, manifestLine, tempDir, type Member } from './build';

/**
 * Test CAs and signing certificates made by the openssl binary, and OVF certificate files signed with
 * them as ovftool writes them: `SHA256(<stem>.mf)= <hex signature>`, then the signer's chain in PEM.
 */
export interface Signer {
  key: string;
  /** The signing certificate, then the intermediates up to (not including) the root. */
  chain: string[];
}

export interface TestPki {
  /** The root CA a test trusts (VMHUB_OVF_TRUSTED_CA_FILE holds it), and one nobody trusts. */
  trustedRoot: string;
  untrustedRoot: string;
  /** Signed under the trusted root through an intermediate (RSA, as ovftool's keys usually are). */
  trusted: Signer;
  /** Signed by the untrusted root directly (EC P-256). */
  untrusted: Signer;
}

function openssl(dir: string, ...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
}

function newKey(dir: string, name: string, kind: 'rsa' | 'ec'): void {
  if (kind === 'rsa') openssl(dir, 'genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', `${name}.key`);
  else openssl(dir, 'genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', `${name}.key`);
}

function root(dir: string, name: string): void {
  newKey(dir, name, 'ec');
  openssl(
    dir,
    'req',
    '-x509',
    '-new',
    '-key',
    `${name}.key`,
    '-out',
    `${name}.pem`,
    '-days',
    '30',
    '-subj',
    `/CN=${name}`,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  );
}

function issue(dir: string, name: string, issuer: string, kind: 'rsa' | 'ec', ca: boolean): void {
  newKey(dir, name, kind);
  openssl(dir, 'req', '-new', '-key', `${name}.key`, '-out', `${name}.csr`, '-subj', `/O=vmhub tests/CN=${name}`);
  fs.writeFileSync(path.join(dir, `${name}.ext`), ca ? 'basicConstraints=critical,CA:TRUE\n' : 'basicConstraints=CA:FALSE\n');
  openssl(
    dir,
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    `${issuer}.pem`,
    '-CAkey',
    `${issuer}.key`,
    '-CAcreateserial',
    '-out',
    `${name}.pem`,
    '-days',
    '30',
    '-extfile',
    `${name}.ext`,
  );
}

export function makeTestPki(): TestPki {
  const dir = tempDir('vmhub-pki-');
  root(dir, 'trusted-root');
  root(dir, 'untrusted-root');
  issue(dir, 'intermediate', 'trusted-root', 'ec', true);
  issue(dir, 'publisher', 'intermediate', 'rsa', false);
  issue(dir, 'stranger', 'untrusted-root', 'ec', false);
  const read = (name: string, ext: string) => fs.readFileSync(path.join(dir, `${name}.${ext}`), 'utf8');
  const pki = {
    trustedRoot: read('trusted-root', 'pem'),
    untrustedRoot: read('untrusted-root', 'pem'),
    trusted: { key: read('publisher', 'key'), chain: [read('publisher', 'pem'), read('intermediate', 'pem')] },
    untrusted: { key: read('stranger', 'key'), chain: [read('stranger', 'pem')] },
  };
  fs.rmSync(dir, { recursive: true, force: true });
  return pki;
}

/** An OVF certificate file: the signature of `manifest` (named `manifestName`) by the signer, and its chain. */
export function certificateFile(signer: Signer, manifestName: string, manifest: Buffer): Buffer {
  const signature = sign('sha256', manifest, signer.key).toString('hex');
  return Buffer.from(`SHA256(${manifestName})= ${signature}\n${signer.chain.join('')}`);
}

/** The members of a package with the certificate of its manifest (`<stem>.mf`) added after the manifest. */
export function signedMembers(members: Member[], signer: Signer): Member[] {
  const at = members.findIndex((m) => m.name.endsWith('.mf'));
  const mf = members[at];
  const cert = { name: mf.name.replace(/\.mf$/, '.cert'), bytes: certificateFile(signer, mf.name, mf.bytes) };
  return [...members.slice(0, at + 1), cert, ...members.slice(at + 1)];
}

const NS = `xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"`;

/** A small OVF package `a.ovf` referencing `disk.vmdk`, as members of an OVA. */
export const smallDescriptor = Buffer.from(
  `<?xml version="1.0"?><Envelope ${NS}><References><File ovf:href="disk.vmdk" ovf:id="f1"/></References>` +
    `<VirtualSystem ovf:id="vm"><Info/><Name>signed</Name></VirtualSystem></Envelope>`,
);

/** The manifest `a.mf` of these members. */
export function manifestOf(members: Member[]): Member {
  return { name: 'a.mf', bytes: Buffer.from(members.map((m) => manifestLine('sha256', m.name, m.bytes)).join('\n') + '\n') };
}

/** The small package's members: with its manifest unless told otherwise, and signed when given a signer. */
export function smallPackage(options: { signer?: Signer; manifest?: boolean; seed?: number } = {}): Member[] {
  const ovf = { name: 'a.ovf', bytes: smallDescriptor };
  const disk = { name: 'disk.vmdk', bytes: filler(5000, options.seed ?? 2) };
  if (options.manifest === false) return [ovf, disk];
  const members = [ovf, manifestOf([ovf, disk]), disk];
  return options.signer ? signedMembers(members, options.signer) : members;
}

/** The small package as an OVA's bytes. */
export const smallOva = (options: Parameters<typeof smallPackage>[0] = {}): Buffer => archive(smallPackage(options));

/** A certificate made to order: issued by an earlier one of the same call, or self-signed without `issuer`. */
export interface CertificateSpec {
  name: string;
  issuer?: string;
  key?: 'ec' | 'rsa' | 'rsa1024';
  /** The openssl extension lines, e.g. `basicConstraints=critical,CA:TRUE,pathlen:0`. */
  extensions: string[];
  /** The digest the issuer signs with: openssl's `-sha256`, `-sha1`, `-md5`. */
  digest?: string;
}

/** Makes the certificates in order; each one's key and PEM by name. */
export function makeCertificates(specs: CertificateSpec[]): Map<string, { key: string; pem: string }> {
  const dir = tempDir('vmhub-pki-');
  const out = new Map<string, { key: string; pem: string }>();
  for (const s of specs) {
    if (s.key === 'rsa1024')
      openssl(dir, 'genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:1024', '-out', `${s.name}.key`);
    else newKey(dir, s.name, s.key ?? 'ec');
    openssl(dir, 'req', '-new', '-key', `${s.name}.key`, '-out', `${s.name}.csr`, '-subj', `/O=vmhub tests/CN=${s.name}`);
    fs.writeFileSync(path.join(dir, `${s.name}.ext`), s.extensions.join('\n') + '\n');
    const by = s.issuer
      ? ['-CA', `${s.issuer}.pem`, '-CAkey', `${s.issuer}.key`, '-CAcreateserial']
      : ['-signkey', `${s.name}.key`];
    openssl(
      dir,
      'x509',
      '-req',
      '-in',
      `${s.name}.csr`,
      ...by,
      `-${s.digest ?? 'sha256'}`,
      '-days',
      '30',
      '-extfile',
      `${s.name}.ext`,
      '-out',
      `${s.name}.pem`,
    );
    const read = (ext: string) => fs.readFileSync(path.join(dir, `${s.name}.${ext}`), 'utf8');
    out.set(s.name, { key: read('key'), pem: read('pem') });
  }
  fs.rmSync(dir, { recursive: true, force: true });
  return out;
}
