import { createHash } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { channelDescription, planChannelUpdate } from '../../src/sddc/channel-item';
import type { ExpectedFile, ItemFile, SessionFile } from '../../src/sddc/content-library';
import { CheckedBytes, FileMismatch } from '../../src/sddc/item-check';

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
const expected = (name: string, body: string): ExpectedFile => ({ name, size: body.length, sha256: sha(body) });
const SHA256 = (f: ExpectedFile) => ({ algorithm: 'SHA256', checksum: f.sha256 });

describe('what an update of a channel item sends, keeps and removes', () => {
  const ovf = expected('edge.ovf', '<Envelope version="2"/>');
  const disk = expected('edge-disk1.vmdk', 'disk of version 2');

  it('an empty item gets every member and loses nothing', () => {
    expect(planChannelUpdate([ovf, disk], [], [])).toEqual({ skip: [], resend: [], add: [ovf, disk], remove: [] });
  });

  it('a file held with the signed SHA-256 (as a vCenter reports it) is kept; one of other bytes is replaced', () => {
    const held: ItemFile[] = [
      { name: 'edge.ovf', size: 20, checksum_info: { algorithm: 'SHA256', checksum: sha('<Envelope version="1"/>') } },
      { name: 'edge-disk1.vmdk', size: disk.size, checksum_info: SHA256(disk) },
    ];
    expect(planChannelUpdate([ovf, disk], [], held)).toEqual({ skip: [disk], resend: [], add: [ovf], remove: [] });
  });

  it('a file listed twice (vcsim lists every upload of a name) counts by its last listing', () => {
    const again: ItemFile[] = [
      { name: 'edge-disk1.vmdk', size: disk.size, checksum_info: SHA256(disk) },
      { name: 'edge-disk1.vmdk', size: 3, checksum_info: { algorithm: 'SHA256', checksum: sha('old') } },
    ];
    expect(planChannelUpdate([disk], [], again).add).toEqual([disk]);
    expect(planChannelUpdate([disk], [], [...again].reverse()).skip).toEqual([disk]);
  });

  it('files of the previous version that this one has not are removed, once each', () => {
    const held: ItemFile[] = [{ name: 'tools-1.0.0.iso', size: 9 }, { name: 'tools-1.0.0.iso', size: 9 }, { name: 'edge.ovf' }];
    expect(planChannelUpdate([ovf], [], held).remove).toEqual(['tools-1.0.0.iso']);
  });

  it('a resumed session resends to the endpoint it gave and skips what it holds READY', () => {
    const session: SessionFile[] = [
      { name: 'edge.ovf', status: 'READY', checksum_info: SHA256(ovf), upload_endpoint: { uri: 'https://vc/data/1/edge.ovf' } },
      { name: 'edge-disk1.vmdk', status: 'TRANSFERRING', upload_endpoint: { uri: 'https://vc/data/2/edge-disk1.vmdk' } },
    ];
    expect(planChannelUpdate([ovf, disk], session, [])).toEqual({
      skip: [ovf],
      resend: [{ file: disk, endpoint: 'https://vc/data/2/edge-disk1.vmdk' }],
      add: [],
      remove: [],
    });
  });
});

describe('bytes checked on their way to an upload', () => {
  const body = 'a'.repeat(100) + 'b'.repeat(100);
  const file = expected('edge-disk1.vmdk', body);
  const chunks = (text: string) => Readable.from([Buffer.from(text.slice(0, 100)), Buffer.from(text.slice(100))]);

  async function pass(text: string): Promise<{ out: string; error?: unknown; seen: number[] }> {
    const out: Buffer[] = [];
    const seen: number[] = [];
    const error = await pipeline(
      chunks(text),
      new CheckedBytes(file, (n) => seen.push(n)),
      new Writable({
        write: (c: Buffer, _e, next) => {
          out.push(c);
          next();
        },
      }),
    ).then(
      () => undefined,
      (err: unknown) => err,
    );
    return { out: Buffer.concat(out).toString(), error, seen };
  }

  it('the signed bytes pass whole', async () => {
    expect(await pass(body)).toEqual({ out: body, error: undefined, seen: [100, 200] });
  });

  it('other bytes of the same size never pass whole: the last chunk is held back and the stream fails', async () => {
    const wrong = await pass('a'.repeat(100) + 'c'.repeat(100));
    expect(wrong.out).toBe('a'.repeat(100));
    expect(wrong.error).toBeInstanceOf(FileMismatch);
    expect((wrong.error as Error).message).toBe(`with SHA-256 ${sha('a'.repeat(100) + 'c'.repeat(100))}, not ${file.sha256}`);
  });

  it('too few or too many bytes fail', async () => {
    expect(((await pass(body.slice(0, 150))).error as Error).message).toBe('as 150 bytes, not 200');
    expect(((await pass(body + 'x')).error as Error).message).toBe('as more than 200 bytes');
  });
});

it('the description names the version a channel item holds, and an update in progress', () => {
  const ref = { image: 'edge', version: '1.2.0', format: 'ova' as const, sha256: 'e'.repeat(64), sizeBytes: 1 };
  expect(channelDescription(ref, 'stable')).toBe(`vmhub channel edge stable 1.2.0 sha256:${'e'.repeat(64)}`);
  expect(channelDescription(ref, 'stable', true)).toBe(
    `vmhub channel edge stable 1.2.0 sha256:${'e'.repeat(64)} (update in progress)`,
  );
});
