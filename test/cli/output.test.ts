import { generateKeyPairSync } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { DeployResult } from '../../src/shared/deploy-input';
import type { PublishProgress, PublishResult } from '../../src/shared/publish-input';
import { plural } from '../../src/shared/units';
import { describeInterval } from '../../src/temporal/schedules';
import { resultTable } from '../../src/cli/operations';
import { printable } from '../../src/cli/output';
import { PublishBars, type BarState } from '../../src/cli/progress';
import * as publish from '../../src/cli/publish';
import * as retention from '../../src/cli/retention';
import * as show from '../../src/cli/show';
import type { CliDeps } from '../../src/cli/deps';
import { keyIdOf } from '../../src/provenance/keys';
import { signStatement } from '../../src/provenance/statement';
import * as verify from '../../src/cli/verify';
import { runCli } from '../harness/cli-io';

describe('printable', () => {
  it.each([
    ['plain text stays', 'Photon OS 5.0 — VMware', 'Photon OS 5.0 — VMware'],
    ['an escape sequence is defused', 'evil\u001b[2J\u001b]0;owned\u0007', 'evil?[2J?]0;owned?'],
    ['a newline cannot forge a second line', 'name\nsha256   0000', 'name?sha256   0000'],
    ['C1 controls too', 'a\u009bb', 'a?b'],
  ])('%s', (_name, input, expected) => {
    expect(printable(input)).toBe(expected);
  });
});

describe('a publish’s bars only move forward', () => {
  const reading = (phase: PublishProgress['phase'], bytesStaged: number, replicas: Record<string, [number, number]> = {}) => ({
    progress: { phase } as PublishProgress,
    bytesTotal: 100,
    bytesStaged,
    replicas: Object.fromEntries(Object.entries(replicas).map(([l, [bytesDone, bytesTotal]]) => [l, { bytesDone, bytesTotal }])),
  });

  it('from staging to committing to replicating to done, no bar goes back; the replicas have a bar of their own', () => {
    const bars = new PublishBars();
    const steps: BarState[][] = [
      reading('probing', 0),
      reading('staging', 40),
      // A retried range's first heartbeat reports less than the attempt before it had staged.
      reading('staging', 30),
      reading('staging', 100),
      reading('committing', 100),
      reading('cataloging', 100),
      reading('replicating', 100, { 'west-replica': [1, 100] }),
      reading('replicating', 100, { 'west-replica': [60, 100] }),
      reading('deploying', 100),
      reading('done', 100),
    ].map((r) => bars.next(r));
    const seen = new Map<string, number>();
    for (const step of steps) {
      for (const bar of step) {
        const fraction = bar.done / bar.total;
        expect(fraction).toBeGreaterThanOrEqual(seen.get(bar.key) ?? 0);
        seen.set(bar.key, fraction);
      }
    }
    expect(steps[2]).toEqual([{ key: 'publish', label: 'publish', state: 'staging', done: 40, total: 100 }]);
    expect(steps[4]).toEqual([{ key: 'publish', label: 'publish', state: 'committing', done: 100, total: 100 }]);
    expect(steps[6]).toEqual([
      { key: 'publish', label: 'publish', state: 'published', done: 100, total: 100 },
      { key: 'replicas', label: 'replicas', state: 'replicating to west-replica', done: 1, total: 100 },
    ]);
    // The replication is no longer pending once the publish deploys: its bar is full.
    expect(steps[8][1]).toEqual({ key: 'replicas', label: 'replicas', state: 'replicated', done: 100, total: 100 });
  });

  it('two replicas: one that finishes first is counted whole, not dropped from the sum', () => {
    const bars = new PublishBars();
    bars.next(reading('replicating', 100, { east: [50, 100], west: [90, 100] }));
    const [, replicas] = bars.next(reading('replicating', 100, { east: [60, 100] }));
    expect(replicas).toMatchObject({ state: 'replicating to east, west', done: 160, total: 200 });
  });
});

const at = new Date('2026-01-01T00:00:00.123Z');
const version = {
  image: 'app',
  version: '1.0.0',
  status: 'available',
  format: 'iso',
  sizeBytes: 2048,
  location: { storage: 'east', container: 'images', blob: 'app/1.0.0/app.iso' },
  blockSize: 8 * 2 ** 20,
  blockCount: 1,
  replicas: [],
  deployments: [],
  channels: [],
  channelItems: [],
};

describe('output that says what is true', () => {
  it('a copy rebuilt from the SDDC’s own verified copy names it as the source, not "-" and "fetched 0 B"', () => {
    const result: DeployResult = {
      image: 'app',
      version: '1.0.0',
      results: [
        { sddc: 'east-1', dataCenter: 'dc-east', status: 'deployed', source: null, bytesFetched: 0, bytesReusedLocally: 0 },
        { sddc: 'west-1', dataCenter: 'dc-west', status: 'deployed', source: 'west-replica', bytesFetched: 2048 },
      ],
    };
    const lines = resultTable(result);
    expect(lines.find((l) => l.startsWith('east-1'))).toMatch(/^east-1 +dc-east +deployed +local copy +nothing \(local copy\)$/);
    expect(lines.find((l) => l.startsWith('west-1'))).toMatch(/^west-1 +dc-west +deployed +west-replica +fetched 2\.0 KiB$/);
  });

  it('show says since when a copy is known to be there, and where a rebuilt one came from', () => {
    const deployment = (sddc: string, extra: object) => ({
      image: 'app',
      version: '1.0.0',
      sddc,
      updatedAt: at,
      attempts: [{ status: 'deployed', source: 'west', at }],
      origin: { status: 'deployed', source: 'west', at },
      ...extra,
    });
    const lines = show.renderText({
      ...version,
      deployments: [
        deployment('east-1', { status: 'deployed', bytesFetched: 0 }),
        deployment('west-1', { status: 'failed', source: 'west', error: 'disk full' }),
      ],
    } as unknown as show.ShowResult);
    expect(lines).toContainEqual(
      expect.stringMatching(
        /^east-1 +deployed \(not checked since 2026-01-01T00:00:00Z\) +1 +local copy \(originally from west\)/,
      ),
    );
    expect(lines).toContainEqual(expect.stringMatching(/^west-1 +failed +1 +west +disk full$/));
  });

  it('show says who signed the version and whether the envelope verifies with the keys the CLI trusts', async () => {
    const keys = fs.mkdtempSync(path.join(os.tmpdir(), 'show-keys-'));
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    fs.writeFileSync(path.join(keys, 'publisher.pem'), publicKey.export({ type: 'spki', format: 'pem' }));
    const sha256 = 'a'.repeat(64);
    const envelope = signStatement(
      {
        image: 'app',
        version: '1.0.0',
        format: 'iso',
        sha256,
        sizeBytes: 1,
        members: [],
        source: 's',
        run: { workflowId: 'w', runId: 'r' },
        publishedAt: at.toISOString(),
      },
      privateKey,
    );
    const provenance = { keyid: keyIdOf(publicKey), signedAt: at, envelopeBlob: 'app.iso.dsse.json', envelope };
    const shown = async (record: object, trustedKeys: string | undefined) => {
      const deps = {
        config: { trustedKeys },
        catalog: async () => ({
          versions: { resolve: async () => record },
          deployments: { of: async () => [] },
          channels: { list: async () => [], itemsOf: async () => [] },
        }),
      } as unknown as CliDeps;
      const result = await show.run({ image: 'app', version: '1.0.0' }, deps);
      return show.renderText(result).find((l) => l.startsWith('signed'));
    };
    const signed = { ...version, sha256, provenance };
    expect(await shown(signed, keys)).toMatch(
      new RegExp(`^signed +by key ${provenance.keyid} at 2026-01-01T00:00:00Z; verified`),
    );
    expect(await shown({ ...signed, sha256: 'b'.repeat(64) }, keys)).toMatch(
      /; not verified \(the catalog's SHA-256 is not the signed a{64}\)/,
    );
    expect(await shown(signed, undefined)).toMatch(/; not checked \(this side trusts no key/);
    expect(await shown({ ...version, sha256 }, keys)).toBe('signed     no: agents refuse to deploy it');
    fs.rmSync(keys, { recursive: true });
  });

  it('a retired version’s blob is said to be removed', () => {
    const retired = { ...version, status: 'retired', retired: { at, by: { workflowId: 'retire:app:1.0.0', runId: 'r' } } };
    const lines = show.renderText(retired as unknown as show.ShowResult);
    expect(lines).toContain('blob       none: removed by the retire (was east/images/app/1.0.0/app.iso)');
    expect(lines.filter((l) => l.startsWith('blob'))).toHaveLength(1);
    expect(show.renderText(version as unknown as show.ShowResult)).toContain('blob       east/images/app/1.0.0/app.iso');
  });

  const published: PublishResult = {
    image: 'app',
    version: '2.5.0',
    format: 'ova',
    sizeBytes: 2048,
    sha256: 'ab'.repeat(32),
    blockSize: 8 * 2 ** 20,
    blockCount: 1,
    location: { storage: 'east', container: 'images', blob: 'app/2.5.0/app-2.5.0.ova' },
    metadata: { kind: 'ova', version: '2.2.0' } as never,
  };

  it('a republish of the same bytes says so, and a publish says published', () => {
    const again = publish.renderText(publish.publishResult('w', { ...published, alreadyPublished: true }));
    expect(again[0]).toBe('already published app@2.5.0 with the same bytes: unchanged (ova, 2.0 KiB, 1 block of 8.0 MiB)');
    expect(publish.renderText(publish.publishResult('w', published))[0]).toBe(
      'published app@2.5.0 (ova, 2.0 KiB, 1 block of 8.0 MiB)',
    );
  });

  it('warns when the version published is not the one the image declares', () => {
    const warning = (declared: string | undefined, given = '2.5.0', kind = 'ova') =>
      publish.versionWarning(
        publish.publishResult('w', { ...published, version: given, metadata: { kind, version: declared } as never }),
      );
    expect(warning('2.2.0')).toBe('warning: app was published as version 2.5.0, but the image declares version 2.2.0');
    expect(warning('2.5.0')).toBeUndefined();
    // Not a semantic version (ttylinux declares "16.1"), or nothing declared: nothing to compare.
    expect(warning('16.1')).toBeUndefined();
    expect(warning(undefined, '2.5.0', 'iso')).toBeUndefined();
    expect(publish.versionWarning({ workflowId: 'w', waited: false })).toBeUndefined();
  });
});

describe('counts agree with their nouns', () => {
  it.each([
    ['0 blocks', 0, 'block', undefined],
    ['1 block', 1, 'block', undefined],
    ['2 SDDCs', 2, 'SDDC', undefined],
    ['1 SDDC', 1, 'SDDC', undefined],
    ['1 batch', 1, 'batch', 'batches'],
    ['3 batches', 3, 'batch', 'batches'],
  ])('%s', (text, n, noun, pluralNoun) => {
    expect(plural(n, noun, pluralNoun)).toBe(text);
  });

  it('in the CLI’s lines', () => {
    const deploy: DeployResult = {
      image: 'app',
      version: '1.0.0',
      results: [{ sddc: 'east-9', dataCenter: 'dc-east', status: 'failed', source: null, reason: 'no agent' }],
      counts: { failed: 1, deployed: 1 },
    };
    expect(resultTable(deploy)[0]).toBe('2 SDDCs: 1 failed, 1 deployed');
    const overlap = { previousVersion: '1.0.0', sharedBlocks: 1, blockCount: 1 };
    expect(show.renderText({ ...version, overlap } as unknown as show.ShowResult)).toContain(
      'overlap    1 of 1 block (100.0 %) shared with 1.0.0',
    );
    const policies = [{ image: 'app', keep: 1 }];
    expect(retention.renderText({ action: 'set', cleared: null, schedule: 's', policies })[0]).toMatch(
      /keeps the newest 1 version \(/,
    );
    const verified = { workflowId: 'v', replicasChecked: 1, versionsChecked: 1, findingsTotal: 0, findings: [] };
    expect(verify.renderText(verified)[0]).toBe('checked 1 replica of 1 version  (workflow v)');
    expect(describeInterval(3_600_000)).toBe('1 hour');
  });

  it('no count in the sources is written with a plural noun of its own: they use plural()', () => {
    const nouns = 'blocks|SDDCs|versions|replicas|files|batches|data centers|storage locations|CPUs|attempts|items|copies';
    const pattern = new RegExp(`\\$\\{[^}]+\\} (${nouns})\\b`);
    const offending: string[] = [];
    const walk = (dir: string): void => {
      for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
        const file = path.join(dir, entry.name);
        if (entry.isDirectory()) walk(file);
        else if (file.endsWith('.ts'))
          fs.readFileSync(file, 'utf8')
            .split('\n')
            .forEach(
              (line, i) => pattern.test(line) && offending.push(`${path.relative(process.cwd(), file)}:${i + 1}: ${line.trim()}`),
            );
      }
    };
    walk(path.resolve(__dirname, '..', '..', 'src'));
    walk(path.resolve(__dirname, '..', '..', 'scripts'));
    expect(offending).toEqual([]);
  });
});

describe('usage errors', () => {
  it('a mistyped option is one line: the error, the suggestion and where the help is, not the whole help', async () => {
    const r = await runCli('publish', 'x.iso', '--image', 'app', '--versoin', '1.0.0');
    expect(r).toEqual({
      stdout: '',
      stderr: "vmhub: UsageError: unknown option '--versoin' (Did you mean --version?); see `vmhub publish --help`\n",
      code: 1,
    });
    expect((await runCli('sddc', 'ad', 'east-9')).stderr).toBe(
      "vmhub: UsageError: unknown command 'ad' (Did you mean add?); see `vmhub sddc --help`\n",
    );
    expect((await runCli('pubish')).stderr).toBe(
      "vmhub: UsageError: unknown command 'pubish' (Did you mean publish?); see `vmhub --help`\n",
    );
  });

  it('stderr is filtered as stdout is: an escape sequence in an error or a usage error is defused', async () => {
    const usage = await runCli('sddc', 'ad\u001b[2J');
    expect(usage.stderr).toBe("vmhub: UsageError: unknown command 'ad?[2J'; see `vmhub sddc --help`\n");
    const failed = await runCli('show', 'bad\u001b]0;owned\u0007@1.0.0');
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(/^vmhub: InvalidInput: bad\?\]0;owned\?@1\.0\.0: /);
    expect(failed.stderr).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
  });

  it('retention set marks --keep required, and says so when it is missing', async () => {
    const help = await runCli('retention', 'set', '--help');
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^ {2}--keep <n> +how many versions to keep \(1 or more\) \(required\)$/m);
    expect(await runCli('retention', 'set', 'app')).toEqual({
      stdout: '',
      stderr: "vmhub: UsageError: required option '--keep <n>' not specified; see `vmhub retention set --help`\n",
      code: 1,
    });
  });
});
