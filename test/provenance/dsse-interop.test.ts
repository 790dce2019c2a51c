import { generateKeyPairSync } from 'node:crypto';
import { keyIdOf } from '../../src/provenance/keys';
import { signStatement, type Published } from '../../src/provenance/statement';
import { verifyWithSecuresystemslib } from '../harness/signing';

const published: Published = {
  image: 'photon',
  version: '5.0.1',
  format: 'ova',
  sha256: 'a'.repeat(64),
  sizeBytes: 10,
  members: [{ name: 'photon.ovf', sha256: 'b'.repeat(64), size: 10 }],
  source: 'file:///images/photon.ova',
  run: { workflowId: 'publish:photon:5.0.1', runId: 'r1' },
  publishedAt: '2026-12-06T17:00:00.000Z',
};

describe('vmhub provenance envelopes verify with an independent DSSE implementation (securesystemslib)', () => {
  it.each([
    ['ed25519', 'ed25519'],
    ['p256', 'ecdsa-sha2-nistp256'],
  ] as const)('%s', (kind, scheme) => {
    const { privateKey, publicKey } =
      kind === 'ed25519' ? generateKeyPairSync('ed25519') : generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const envelope = signStatement(published, privateKey);
    const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const keyid = keyIdOf(publicKey);
    const result = verifyWithSecuresystemslib({ pem, scheme, keyid, envelope });
    expect(result.keyids).toEqual([keyid]);
    expect(result.statement.subject).toEqual([{ name: 'photon@5.0.1', digest: { sha256: published.sha256 } }]);

    const forged = { ...envelope, payload: Buffer.from('{"_type":"forged"}').toString('base64') };
    expect(() => verifyWithSecuresystemslib({ pem, scheme, keyid, envelope: forged })).toThrow(/Verification/i);
  });
});
