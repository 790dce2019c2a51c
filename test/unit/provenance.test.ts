import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pae, parseEnvelope, signEnvelope, verifyEnvelope } from '../../src/provenance/dsse';
import { keyIdOf, loadSigningKey, loadTrustedKeys, type TrustedKey } from '../../src/provenance/keys';
import {
  checkAgainstProvenance,
  PAYLOAD_TYPE,
  signStatement,
  verifyProvenance,
  type Published,
} from '../../src/provenance/statement';

const published: Published = {
  image: 'photon',
  version: '5.0.1',
  format: 'ova',
  sha256: 'a'.repeat(64),
  sizeBytes: 3072,
  members: [
    { name: 'photon.ovf', sha256: 'b'.repeat(64), size: 1024 },
    { name: 'disk1.vmdk', sha256: 'c'.repeat(64), size: 1024 },
  ],
  source: 'file:///images/photon.ova',
  run: { workflowId: 'publish:photon:5.0.1', runId: 'r1' },
  publishedAt: '2026-12-06T17:00:00.000Z',
};

function keyPair(kind: 'ed25519' | 'p256'): { privateKey: KeyObject; trusted: TrustedKey } {
  const { privateKey, publicKey } =
    kind === 'ed25519' ? generateKeyPairSync('ed25519') : generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return { privateKey, trusted: { keyid: keyIdOf(publicKey), publicKey } };
}

describe('DSSE envelopes', () => {
  it('encodes PAE as the DSSE specification writes it', () => {
    expect(pae('http://example.com/HelloWorld', Buffer.from('hello world')).toString()).toBe(
      'DSSEv1 29 http://example.com/HelloWorld 11 hello world',
    );
  });

  it.each(['ed25519', 'p256'] as const)('signs and verifies with %s, naming the key by its ID', (kind) => {
    const { privateKey, trusted } = keyPair(kind);
    const envelope = signEnvelope(PAYLOAD_TYPE, Buffer.from('{}'), privateKey);
    expect(envelope.signatures[0].keyid).toBe(trusted.keyid);
    expect(verifyEnvelope(envelope, PAYLOAD_TYPE, [trusted]).keyid).toBe(trusted.keyid);
  });

  it('refuses an envelope signed by a key it does not trust, or whose payload was changed', () => {
    const signer = keyPair('ed25519');
    const other = keyPair('ed25519');
    const envelope = signEnvelope(PAYLOAD_TYPE, Buffer.from('{"a":1}'), signer.privateKey);
    expect(() => verifyEnvelope(envelope, PAYLOAD_TYPE, [other.trusted])).toThrow(
      expect.objectContaining({ type: 'UntrustedSignature' }),
    );
    const edited = { ...envelope, payload: Buffer.from('{"a":2}').toString('base64') };
    expect(() => verifyEnvelope(edited, PAYLOAD_TYPE, [signer.trusted])).toThrow(
      expect.objectContaining({ type: 'UntrustedSignature' }),
    );
    expect(() => verifyEnvelope(envelope, 'application/json', [signer.trusted])).toThrow(/payload type/);
  });

  it('refuses what is not an envelope as unsigned', () => {
    for (const text of ['not json', '{}', '{"payloadType":"x","payload":"", "signatures":[{"keyid":1}]}']) {
      expect(() => parseEnvelope(text)).toThrow(expect.objectContaining({ type: 'UnsignedImage' }));
    }
  });

  it('lets a key be rotated: an envelope verifies while one of its keys is trusted', () => {
    const old = keyPair('ed25519');
    const next = keyPair('p256');
    const envelope = signStatement(published, next.privateKey);
    expect(verifyProvenance(envelope, [old.trusted, next.trusted], published).keyid).toBe(next.trusted.keyid);
    expect(() => verifyProvenance(envelope, [old.trusted], published)).toThrow(/no signature verifies/);
  });
});

describe('provenance statements', () => {
  const { privateKey, trusted } = keyPair('ed25519');
  const envelope = signStatement(published, privateKey);

  it('is an in-toto Statement v1 whose subject is the image at its version', () => {
    const statement = JSON.parse(Buffer.from(envelope.payload, 'base64').toString());
    expect(statement._type).toBe('https://in-toto.io/Statement/v1');
    expect(statement.subject).toEqual([{ name: 'photon@5.0.1', digest: { sha256: published.sha256 } }]);
    expect(statement.predicate.members).toEqual(published.members);
  });

  it('is refused for another version or image: a label cannot borrow another version’s signature', () => {
    expect(() => verifyProvenance(envelope, [trusted], { image: 'photon', version: '5.0.2' })).toThrow(
      expect.objectContaining({ type: 'ProvenanceMismatch', message: expect.stringContaining('not photon@5.0.2') }),
    );
    expect(() => verifyProvenance(envelope, [trusted], { image: 'ubuntu', version: '5.0.1' })).toThrow(/not ubuntu@5.0.1/);
  });

  it('checks hashed bytes and members against the signed digests', () => {
    const provenance = verifyProvenance(envelope, [trusted], published);
    expect(() =>
      checkAgainstProvenance(provenance, {
        sha256: published.sha256,
        sizeBytes: 3072,
        members: [{ name: 'disk1.vmdk', sha256: 'c'.repeat(64) }],
      }),
    ).not.toThrow();
    expect(() => checkAgainstProvenance(provenance, { sha256: 'd'.repeat(64), sizeBytes: 3072 })).toThrow(
      expect.objectContaining({ type: 'ProvenanceMismatch' }),
    );
    expect(() =>
      checkAgainstProvenance(provenance, {
        sha256: published.sha256,
        sizeBytes: 3072,
        members: [{ name: 'disk1.vmdk', sha256: 'e'.repeat(64) }],
      }),
    ).toThrow(/disk1.vmdk/);
    expect(() =>
      checkAgainstProvenance(provenance, {
        sha256: published.sha256,
        sizeBytes: 3072,
        members: [{ name: 'second.ovf', sha256: 'b'.repeat(64) }],
      }),
    ).toThrow(/not in the signed statement/);
  });

  it('carries the blob’s blocks when publish signed them, and refuses a statement that lists them badly', () => {
    const blocks = { size: 1024, listSha256: 'f'.repeat(64) };
    expect(verifyProvenance(signStatement({ ...published, blocks }, privateKey), [trusted], published).blocks).toEqual(blocks);
    // Signed before blocks were: none, and still a statement.
    expect(verifyProvenance(envelope, [trusted], published).blocks).toBeUndefined();
    for (const bad of [{ size: 0, listSha256: blocks.listSha256 }, { size: 1024, listSha256: 'F'.repeat(64) }, { size: 1024 }]) {
      const signed = signStatement({ ...published, blocks: bad as typeof blocks }, privateKey);
      expect(() => verifyProvenance(signed, [trusted], published)).toThrow(
        expect.objectContaining({ type: 'ProvenanceMismatch', message: expect.stringContaining('lists its blocks') }),
      );
    }
  });
});

describe('key files', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmhub-keys-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('loads a signing key and trusts public keys from files and directories', () => {
    const a = keyPair('ed25519');
    const b = keyPair('p256');
    fs.writeFileSync(path.join(dir, 'signing.key'), a.privateKey.export({ type: 'pkcs8', format: 'pem' }));
    fs.mkdirSync(path.join(dir, 'trusted'));
    fs.writeFileSync(path.join(dir, 'trusted', 'a.pem'), a.trusted.publicKey.export({ type: 'spki', format: 'pem' }));
    fs.writeFileSync(path.join(dir, 'b.pem'), b.trusted.publicKey.export({ type: 'spki', format: 'pem' }));
    const signing = loadSigningKey(path.join(dir, 'signing.key'));
    expect(keyIdOf(signing)).toBe(a.trusted.keyid);
    const trusted = loadTrustedKeys(`${path.join(dir, 'trusted')}, ${path.join(dir, 'b.pem')}`);
    expect(trusted.map((k) => k.keyid)).toEqual([a.trusted.keyid, b.trusted.keyid]);
  });

  it('refuses an RSA key and a missing file', () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    fs.writeFileSync(path.join(dir, 'rsa.key'), privateKey.export({ type: 'pkcs8', format: 'pem' }));
    expect(() => loadSigningKey(path.join(dir, 'rsa.key'))).toThrow(/Ed25519 or ECDSA P-256, not rsa/);
    expect(() => loadTrustedKeys(path.join(dir, 'missing.pem'))).toThrow(/does not exist/);
  });
});
