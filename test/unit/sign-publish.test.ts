import fs from 'node:fs';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { createInspector } from '../../src/images/inspect';
import { publicSource, requireSigningKey, signedMembers } from '../../src/publish/sign';
import { ovaFromDescriptor, tempDir } from '../images/build';

const DESCRIPTOR = `<?xml version="1.0"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
  <References><File ovf:href="disk.vmdk" ovf:id="f1" ovf:size="1"/></References>
  <DiskSection><Info/><Disk ovf:diskId="d1" ovf:fileRef="f1" ovf:capacity="1"/></DiskSection>
  <VirtualSystem ovf:id="vm"><Info/><Name>m</Name></VirtualSystem>
</Envelope>`;

describe('what a publish signs', () => {
  it('lists every member with its SHA-256 and size, also under a SHA-1 manifest', async () => {
    const { path: ova, members } = ovaFromDescriptor(path.join(tempDir('sign-'), 'm.ova'), DESCRIPTOR, { manifest: 'sha1' });
    const inspector = createInspector('ova');
    await inspector.write(fs.readFileSync(ova));
    const signed = signedMembers(await inspector.finish());
    expect(signed).toEqual(
      members.map((m) => ({ name: m.name, sha256: createHash('sha256').update(m.bytes).digest('hex'), size: m.bytes.length })),
    );
    expect(signedMembers({ kind: 'iso', volumeId: 'V', volumeSizeBytes: 1, bootable: false, joliet: false, udf: false })).toEqual(
      [],
    );
  });

  it('names the source without credentials, query string or fragment', () => {
    expect(publicSource('https://user:secret@images.example/a/b.ova?sig=abc#x')).toBe('https://images.example/a/b.ova');
    expect(publicSource('photon/photon-5.ova')).toBe('photon/photon-5.ova');
  });

  it('is refused, typed, on a worker without a signing key', () => {
    expect(() => requireSigningKey(undefined)).toThrow(expect.objectContaining({ type: 'NoSigningKey' }));
  });
});
