import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { hashDatastoreCopy, hashWithinBudget, listDatastoreDrift } from '../../src/deploy/drift-check';
import { sddcsToCheck } from '../../src/lifecycle/sddc-drift';
import { capDetail, MAX_DETAIL_CHARS, type CopyToCheck, type PageCursor, type SddcPage } from '../../src/shared/drift-input';
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

  it('hashes one budget-sized group a run, at least one copy, so every copy is hashed once within as many runs as groups', async () => {
    const sizes = [10, 10, 30, 5, 5, 10];
    const copies = sizes.map((n, i) => ({ ...copy(`1.${i}.0`), sizeBytes: n }));
    const order: string[] = [];
    const hashOne = async (c: CopyToCheck) => {
      order.push(c.version);
      return c.version === '1.1.0'
        ? { sddc: 'dir-1', image: 'app', version: c.version, kind: 'edited' as const, detail: '' }
        : undefined;
    };
    // Groups within 20 bytes: [1.0, 1.1], [1.2 (30 > 20, alone)], [1.3, 1.4, 1.5].
    expect(await hashWithinBudget(copies, 20, 3, hashOne)).toMatchObject({
      hashed: 2,
      deferred: 4,
      bytesHashed: 20,
      findings: [{ version: '1.1.0' }],
    });
    expect(order).toEqual(['1.0.0', '1.1.0']);
    for (const rotation of [4, 5]) await hashWithinBudget(copies, 20, rotation, hashOne);
    expect([...order].sort()).toEqual(copies.map((c) => c.version));
    order.length = 0;
    expect(await hashWithinBudget(copies, 0, 5, hashOne)).toMatchObject({ hashed: 1, deferred: 5 });
    expect(order).toEqual(['1.5.0']);
  });

  it('cuts a finding detail to MAX_DETAIL_CHARS', () => {
    expect(capDetail('short')).toBe('short');
    expect(capDetail('x'.repeat(5000))).toHaveLength(MAX_DETAIL_CHARS);
  });
});

describe('the pages of SDDCs to check', () => {
  const envelope = { payloadType: 't', payload: 'p'.repeat(16 * 1024), signatures: [] };
  const versions = Array.from({ length: 10 }, (_, i) => `1.0.${i}`);
  const catalog = {
    sddcs: { list: async () => ['c-3', 'a-1', 'b-2'].map((name) => ({ name, taskQueue: `q-${name}` })) },
    deployments: {
      heldBy: async (names: string[]) =>
        names.flatMap((sddc) => (sddc === 'b-2' ? versions : ['1.0.0']).map((version) => ({ sddc, image: 'app', version }))),
    },
    versions: {
      get: async (image: string, version: string) => ({
        image,
        version,
        format: 'iso',
        sizeBytes: 1,
        status: 'available',
        sha256: 'a'.repeat(64),
        provenance: { envelope },
      }),
    },
  } as unknown as Parameters<typeof sddcsToCheck>[0];

  it('cuts a page by its serialized size, continuing an SDDC whose copies do not fit on the next pages, each copy once', async () => {
    const pages: SddcPage[] = [];
    let after: PageCursor | undefined;
    do {
      const page = await sddcsToCheck(catalog, { after, limit: 100, maxBytes: 3 * 17 * 1024 });
      expect(JSON.stringify(page).length).toBeLessThan(4 * 17 * 1024);
      pages.push(page);
      after = page.next;
    } while (after);
    const seen = pages.flatMap((p) => p.sddcs.flatMap((s) => s.copies.map((c) => `${s.name} ${c.version}`)));
    expect(seen).toEqual(['a-1 1.0.0', ...versions.map((v) => `b-2 ${v}`), 'c-3 1.0.0']);
    expect(pages.map((p) => p.sddcs.map((s) => `${s.name}:${s.copies.length}`))).toEqual([
      ['a-1:1', 'b-2:2'],
      ['b-2:3'],
      ['b-2:3'],
      ['b-2:2', 'c-3:1'],
    ]);
  });
});
