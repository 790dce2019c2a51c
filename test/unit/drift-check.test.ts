import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { hashDatastoreCopy, hashWithinBudget, listDatastoreDrift } from '../../src/deploy/drift-check';
import type { CopyToCheck } from '../../src/shared/drift-input';
import { tempDir } from '../images/build';

const bytes = Buffer.from('the bytes vmhub deployed');
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const copy = (version: string): CopyToCheck => ({
  image: 'app',
  version,
  format: 'iso',
  sha256: sha(bytes),
  sizeBytes: bytes.length,
});

/** A datastore holding app@<version> for each version, with a sidecar naming the expected SHA-256 whatever the bytes. */
function datastore(files: Record<string, Buffer | undefined>): string {
  const root = tempDir('vmhub-drift-');
  for (const [version, content] of Object.entries(files)) {
    const dir = path.join(root, 'app', version);
    fs.mkdirSync(dir, { recursive: true });
    if (content) fs.writeFileSync(path.join(dir, `app-${version}.iso`), content);
    fs.writeFileSync(path.join(dir, `app-${version}.iso.sha256`), `${sha(bytes)}  app-${version}.iso\n`);
  }
  return root;
}

describe("an agent's drift check of its datastore copies", () => {
  it('finds missing, empty and resized copies by their stat, and leaves the others to hash; the sidecar counts for nothing', async () => {
    const edited = Buffer.from(bytes).fill(0x41, 0, 4);
    const root = datastore({
      '1.0.0': undefined,
      '1.1.0': Buffer.alloc(0),
      '1.2.0': Buffer.from('short'),
      '1.3.0': edited,
      '1.4.0': bytes,
    });
    const copies = ['1.0.0', '1.1.0', '1.2.0', '1.3.0', '1.4.0'].map(copy);
    const listed = await listDatastoreDrift(root, 'dir-1', copies);
    expect(listed.findings.map((f) => [f.version, f.kind])).toEqual([
      ['1.0.0', 'missing'],
      ['1.1.0', 'zero-byte'],
      ['1.2.0', 'edited'],
    ]);
    expect(listed.toHash.map((c) => c.version)).toEqual(['1.3.0', '1.4.0']);
    expect(await hashDatastoreCopy(root, 'dir-1', copy('1.3.0'), {})).toMatchObject({ kind: 'edited', version: '1.3.0' });
    expect(await hashDatastoreCopy(root, 'dir-1', copy('1.4.0'), {})).toBeUndefined();
  });

  it('hashes within the budget, at least one copy, starting further along the list each day', async () => {
    const copies = ['1.0.0', '1.1.0', '1.2.0'].map((v) => ({ ...copy(v), sizeBytes: 10 }));
    const order: string[] = [];
    const hashOne = async (c: CopyToCheck) => {
      order.push(c.version);
      return c.version === '1.2.0'
        ? { sddc: 'dir-1', image: 'app', version: c.version, kind: 'edited' as const, detail: '' }
        : undefined;
    };
    expect(await hashWithinBudget(copies, 20, 1, hashOne)).toMatchObject({
      hashed: 2,
      deferred: 1,
      bytesHashed: 20,
      findings: [{ version: '1.2.0' }],
    });
    expect(order).toEqual(['1.1.0', '1.2.0']);
    order.length = 0;
    expect(await hashWithinBudget(copies, 0, 5, hashOne)).toMatchObject({ hashed: 1, deferred: 2 });
    expect(order).toEqual(['1.2.0']);
  });
});
