import fs from 'node:fs';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import type { Catalog } from '../../src/catalog/catalog';
import type { ImageVersionRecord, VersionFilters } from '../../src/catalog/image-records';
import type { SddcRecord } from '../../src/catalog/sddc-records';
import { loadConfig } from '../../src/config';
import { VmhubError } from '../../src/shared/errors';
import * as temporal from '../../src/temporal/connection';
import { parseRef, parseSddcList } from '../../src/cli/checks';
import * as deploy from '../../src/cli/deploy';
import type { CliDeps } from '../../src/cli/deps';
import * as images from '../../src/cli/images';
import { table } from '../../src/cli/output';
import { formatMiB } from '../../src/shared/units';
import { buildProgram, main } from '../../src/cli/program';
import { formatEta, PhaseRate } from '../../src/cli/progress';
import * as publish from '../../src/cli/publish';
import { parseLimit, runsQuery } from '../../src/cli/runs';
import { connectTemporal, CONNECT_TIMEOUT_MS, redactUri } from '../../src/cli/services';
import * as sddcAdd from '../../src/cli/sddc-add';
import * as sddcList from '../../src/cli/sddc-list';
import * as sddcShow from '../../src/cli/sddc-show';
import * as sddcUpdate from '../../src/cli/sddc-update';
import * as show from '../../src/cli/show';
import * as status from '../../src/cli/status';
import { capture } from '../harness/cli-io';
import { typedError } from '../unit/typed-error';

/** The error a call throws, to look at its type and message. */
async function failureOf(fn: () => unknown): Promise<{ type: string; message: string }> {
  try {
    await fn();
  } catch (err) {
    return err as { type: string; message: string };
  }
  throw new Error('expected a failure');
}

const sddc = (name: string): SddcRecord => ({
  name,
  dataCenter: 'dc-east',
  taskQueue: `sddc-${name}`,
  capacity: { cpus: 8, memoryMiB: 16384, diskGiB: 100 },
  createdAt: new Date(0),
});

/** Deps whose catalog knows two SDDCs and one version, and whose Temporal must not be reached. */
function fakeDeps(versions: Partial<ImageVersionRecord>[] = []) {
  const temporalCalls: string[] = [];
  const catalog = {
    sddcs: { list: async () => [sddc('east-1'), sddc('west-1')] },
    versions: {
      resolve: async (image: string, version: string) =>
        versions.find((v) => v.image === image && v.version === version) as ImageVersionRecord | undefined,
      find: async () => versions as ImageVersionRecord[],
    },
  } as unknown as Catalog;
  const deps: CliDeps = {
    config: loadConfig(),
    catalog: async () => catalog,
    temporal: async () => {
      temporalCalls.push('connect');
      throw new Error('Temporal must not be reached');
    },
    io: capture(),
  };
  return { deps, temporalCalls };
}

describe('checks in the CLI’s own words', () => {
  it.each([
    ['app@v1.0.0', /^app@v1\.0\.0: "v1\.0\.0" has a leading "v": drop the v \(1\.0\.0\), or latest, or latest-pre$/],
    ['app@1.0', /needs three numbers, MAJOR\.MINOR\.PATCH \(e\.g\. 1\.0\.0\)/],
    ['app@2', /needs three numbers, MAJOR\.MINOR\.PATCH \(e\.g\. 2\.0\.0\)/],
    ['app@latest-ish', /is not a semantic version .*, or latest, or latest-pre$/],
  ])('version in %s', (ref, message) => {
    const err = typedError('InvalidInput', () => parseRef(ref));
    expect(err).toBeInstanceOf(VmhubError);
    expect(err.message).toMatch(message);
  });

  it('names the ref and suggests the lowercase image name, without a regex', () => {
    const { message } = typedError('InvalidInput', () => parseRef('Tools@1.0.0'));
    expect(message).toMatch(/^Tools@1\.0\.0: "Tools" is not an image name \(try tools\)/);
    expect(message).not.toMatch(/\^|\$/);
  });

  it('reads image@version, image@latest and image@latest-pre, and says what a ref looks like', () => {
    expect(parseRef('ubuntu-app@2.3.1')).toEqual({ image: 'ubuntu-app', version: '2.3.1' });
    expect(parseRef('ubuntu-app@1.3.0-rc.1')).toEqual({ image: 'ubuntu-app', version: '1.3.0-rc.1' });
    expect(parseRef('ubuntu-app@latest')).toEqual({ image: 'ubuntu-app', version: 'latest' });
    expect(parseRef('ubuntu-app@latest-pre')).toEqual({ image: 'ubuntu-app', version: 'latest-pre' });
    expect(typedError('InvalidInput', () => parseRef('ubuntu-app')).message).toMatch(
      /e\.g\. ubuntu-app@2\.3\.1, ubuntu-app@latest or ubuntu-app@latest-pre/,
    );
  });

  it('for retire, verify and deprecate, reads <image>@<version> with an exact version only', () => {
    expect(parseRef('app@1.2.3', false)).toEqual({ image: 'app', version: '1.2.3' });
    for (const bad of ['app', 'app@', '@1.0.0', 'App@1.0.0', 'app@latest', 'app@latest-pre'])
      expect(typedError('InvalidInput', () => parseRef(bad, false))).toBeInstanceOf(VmhubError);
    expect(typedError('InvalidInput', () => parseRef('app', false)).message).toBe(
      '"app" is not <image>@<version>: e.g. ubuntu-app@2.3.1',
    );
  });

  it('names the SDDC given twice, and the flag', () => {
    expect(parseSddcList('east-1, west-1', '--to')).toEqual(['east-1', 'west-1']);
    expect(typedError('InvalidInput', () => parseSddcList('east-1,west-1,east-1', '--to')).message).toBe(
      '--to lists SDDC east-1 twice',
    );
    expect(typedError('InvalidInput', () => parseSddcList('East-1', '--to')).message).toMatch(
      /^--to entry "East-1" is not an SDDC name \(try east-1\)/,
    );
    expect(typedError('InvalidInput', () => parseSddcList(' , ', '--to')).message).toBe(
      '--to names no SDDC: e.g. --to east-1,west-1 or --to all',
    );
    // Each example in that message is accepted.
    expect(parseSddcList('east-1,west-1', '--to')).toEqual(['east-1', 'west-1']);
    expect(parseSddcList(' all ', '--deploy')).toBe('all');
    expect(typedError('InvalidInput', () => parseSddcList('all,east-1', '--deploy')).message).toBe(
      '--deploy lists "all" among SDDC names: give "all" alone (every SDDC), or only names',
    );
  });

  it('runs are queried by a valid image name only', () => {
    expect(parseLimit('5')).toBe(5);
    const every = "WorkflowType IN ('PublishImage', 'DeployToSDDCs', 'RetireImage', 'ApplyRetention', 'VerifyReplicas')";
    expect(runsQuery()).toBe(every);
    expect(runsQuery('ubuntu-app')).toBe(
      `${every} AND (VmImage = 'ubuntu-app' OR WorkflowId STARTS_WITH 'publish:ubuntu-app:' OR WorkflowId STARTS_WITH 'deploy:ubuntu-app:'` +
        " OR WorkflowId STARTS_WITH 'retire:ubuntu-app:' OR WorkflowId STARTS_WITH 'retention:ubuntu-app:' OR WorkflowId STARTS_WITH 'verify:ubuntu-app:')",
    );
    expect(typedError('InvalidInput', () => runsQuery("x' OR 1=1")).message).toMatch(/^--image "x' OR 1=1" is not an image name/);
  });
});

describe('images run', () => {
  function recording() {
    const queries: VersionFilters[] = [];
    const catalog = {
      versions: {
        find: async (f: VersionFilters) => {
          queries.push(f);
          return [];
        },
      },
    } as unknown as Catalog;
    return { queries, deps: { ...fakeDeps().deps, catalog: async () => catalog } };
  }

  it('asks the catalog one query with every filter given; a capacity or OS filter lists available versions', async () => {
    const { queries, deps } = recording();
    await images.run({ image: 'app' }, deps);
    await images.run({ image: 'app', os: 'ubuntu64Guest', fits: { cpus: 4, memoryMiB: 8192 } }, deps);
    expect(queries).toEqual([
      { image: 'app', osType: undefined, fits: undefined, status: undefined },
      { image: 'app', osType: 'ubuntu64Guest', fits: { cpus: 4, memoryMiB: 8192 }, status: 'available' },
    ]);
  });

  it('refuses a bad --image or --fits before asking the catalog', async () => {
    const { queries, deps } = recording();
    expect((await failureOf(() => images.run({ image: 'App' }, deps))).type).toBe('InvalidInput');
    const io = capture();
    await main(['node', 'vmhub', 'images', '--fits', 'cpus=lots', '--json'], io);
    expect(JSON.parse(io.stdout).error).toMatchObject({
      type: 'InvalidInput',
      message: expect.stringMatching(/^--fits cpus="lots" is not a number/),
    });
    process.exitCode = 0;
    expect(queries).toEqual([]);
  });
});

describe('sddc commands', () => {
  it.each(['2.5', '-4', 'lots', '0'])('refuses --cpus %s with InvalidInput before reaching the catalog', async (cpus) => {
    for (const command of [
      ['add', 'east-9', '--dc', 'dc-east'],
      ['update', 'east-9'],
    ]) {
      const io = capture();
      await main(['node', 'vmhub', 'sddc', ...command, '--cpus', cpus, '--json'], io);
      expect(JSON.parse(io.stdout)).toEqual({
        error: {
          type: 'InvalidInput',
          message: expect.stringMatching(/^--cpus ".*" (is not a number|must be a whole number of CPUs above zero)/),
        },
      });
      process.exitCode = 0;
    }
  });

  it('update with nothing to change, or an unknown data center, is refused before reaching the catalog', async () => {
    const { deps } = fakeDeps();
    const noCatalog = { ...deps, catalog: async () => Promise.reject(new Error('the catalog must not be reached')) };
    expect((await failureOf(() => sddcUpdate.run({ name: 'east-1', capacity: {} }, noCatalog))).message).toMatch(
      /^nothing to change: give at least one of --dc/,
    );
    expect((await failureOf(() => sddcUpdate.run({ name: 'east-1', dc: 'dc-north', capacity: {} }, noCatalog))).message).toMatch(
      /^--dc "dc-north" is not a data center of the topology/,
    );
    expect(
      (
        await failureOf(() =>
          sddcAdd.run({ name: 'East-1', dc: 'dc-east', capacity: { cpus: 1, memoryMiB: 1, diskGiB: 1 }, target: {} }, noCatalog),
        )
      ).type,
    ).toBe('InvalidInput');
  });
});

describe("an SDDC's OVF policy options", () => {
  it('add stores the demands given; update sets or clears each on its own; show prints them', async () => {
    const written: unknown[] = [];
    const record = (fields: object) => ({ ...sddc('east-9'), ...fields });
    const catalog = {
      sddcs: {
        create: async (s: object) => (written.push(s), record(s)),
        update: async (_: string, changes: object) => (written.push(changes), record(changes)),
      },
    } as unknown as Catalog;
    const deps = { ...fakeDeps().deps, catalog: async () => catalog };
    const parse = (...args: string[]) => buildProgram(deps, '0', () => undefined).parseAsync(['node', 'vmhub', 'sddc', ...args]);
    await parse('add', 'east-9', '--dc', 'dc-east', '--require-ovf-cert');
    await parse('update', 'east-9', '--require-manifest', '--no-require-ovf-cert');
    await parse('update', 'east-9', '--cpus', '4');
    expect(written).toEqual([
      expect.objectContaining({ name: 'east-9', ovfPolicy: { requireVerifiedCertificate: true } }),
      expect.objectContaining({ ovfPolicy: { requireManifest: true, requireVerifiedCertificate: false } }),
      expect.objectContaining({ ovfPolicy: undefined }),
    ]);
    const lines = (ovfPolicy?: SddcRecord['ovfPolicy']) => sddcShow.renderText(record({ ovfPolicy }) as SddcRecord);
    expect(lines({ requireManifest: true, requireVerifiedCertificate: true })).toContain(
      'OVF policy  requires a manifest listing every member and a verified OVF certificate',
    );
    expect(lines(undefined)).toContain('OVF policy  none');
  });
});

describe("an SDDC's gate guest check", () => {
  it('add keeps power-state; update --guest-check alone changes only that setting of the library; list and show say so', async () => {
    const library = { kind: 'content-library', vcenter: 'https://vc9.example.com/', library: 'lib', datastore: 'ds1' };
    const records = new Map<string, SddcRecord>([
      ['east-9', { ...sddc('east-9'), target: { ...library, guestCheck: 'power-state' } } as SddcRecord],
      ['east-8', { ...sddc('east-8'), target: { kind: 'directory' } }],
    ]);
    const written: unknown[] = [];
    const catalog = {
      sddcs: {
        create: async (s: SddcRecord) => (written.push(s), s),
        require: async (name: string) => records.get(name)!,
        update: async (name: string, changes: object) => (written.push(changes), { ...records.get(name)!, ...changes }),
      },
    } as unknown as Catalog;
    const io = capture();
    const deps = { ...fakeDeps().deps, catalog: async () => catalog, io };
    const parse = (...args: string[]) => buildProgram(deps, '0', () => undefined).parseAsync(['node', 'vmhub', 'sddc', ...args]);
    await parse('add', 'east-7', '--dc', 'dc-east', '--vcenter', 'https://vc7.example.com', '--guest-check', 'power-state');
    await parse('update', 'east-9', '--guest-check', 'required');
    expect(written).toEqual([
      expect.objectContaining({
        name: 'east-7',
        target: { kind: 'content-library', vcenter: 'https://vc7.example.com/', library: 'vmhub', guestCheck: 'power-state' },
      }),
      expect.objectContaining({ target: library }),
    ]);
    expect(io.stdout).toContain(
      'deploys into content library vmhub on https://vc7.example.com/; gate guest check: power state only',
    );

    const refused = await failureOf(() =>
      sddcUpdate.run({ name: 'east-8', capacity: {}, target: { guestCheck: 'power-state' } }, deps),
    );
    expect(refused).toMatchObject({
      type: 'InvalidInput',
      message: expect.stringMatching(/^SDDC east-8 deploys into .*--guest-check is a content library's setting/),
    });
    const typo = await failureOf(() =>
      sddcUpdate.run(
        { name: 'east-9', capacity: {}, target: { guestCheck: 'tools' } },
        { ...deps, catalog: () => Promise.reject(new Error('not reached')) },
      ),
    );
    expect(typo).toMatchObject({
      type: 'InvalidInput',
      message: expect.stringMatching(/guestCheck must be "required" or "power-state"/),
    });

    expect(sddcShow.renderText(records.get('east-9')!).join('\n')).toContain('gate guest check: power state only');
    expect(sddcList.renderText([records.get('east-9')!]).join('\n')).toContain('content library (guest check: power state)');
  });
});

describe('deploy run', () => {
  const available = { image: 'app', version: '1.0.0', status: 'available' as const };

  it('refuses a typo in --to before reaching Temporal', async () => {
    const { deps, temporalCalls } = fakeDeps([available]);
    const err = await failureOf(() =>
      deploy.run({ image: 'app', version: '1.0.0', to: ['east-1', 'esat-1'], force: false, wait: true }, deps),
    );
    expect(err).toMatchObject({ type: 'UnknownSddc' });
    expect(err.message).toBe(
      '--to esat-1: no SDDC of that name is registered (registered: east-1, west-1); see `vmhub sddc list`',
    );
    expect(temporalCalls).toEqual([]);
  });

  it('refuses a version that is not in the catalog, naming those that are', async () => {
    const { deps, temporalCalls } = fakeDeps([available]);
    const err = await failureOf(() =>
      deploy.run({ image: 'app', version: '2.0.0', to: ['east-1'], force: false, wait: true }, deps),
    );
    expect(err).toMatchObject({ type: 'UnknownImage', message: 'app@2.0.0 is not in the catalog; available versions: 1.0.0' });
    expect(temporalCalls).toEqual([]);
  });

  it('a version still being published is waited for, not published again (that would be refused)', async () => {
    const owner = { workflowId: 'publish:app:3.0.0', runId: 'r1' };
    const { deps } = fakeDeps([{ image: 'app', version: '3.0.0', status: 'uploading', owner }]);
    const err = await failureOf(() =>
      deploy.run({ image: 'app', version: '3.0.0', to: ['east-1'], force: false, wait: true }, deps),
    );
    expect(err).toMatchObject({
      type: 'UnknownImage',
      message:
        'app@3.0.0 is still being published by workflow publish:app:3.0.0; wait for it with `vmhub wait publish:app:3.0.0`, then deploy',
    });
  });

  it('renders an incomplete deploy as incomplete, with each reason, and exits 2', () => {
    const result = deploy.deployResult('deploy:app:1.0.0:x', {
      image: 'app',
      version: '1.0.0',
      results: [
        { sddc: 'east-1', dataCenter: 'dc-east', status: 'deployed', source: 'east-primary', path: '/ds/app' },
        { sddc: 'east-3', dataCenter: 'dc-east', status: 'failed', source: 'east-primary', reason: 'NoAgent: no agent' },
        { sddc: 'tiny', dataCenter: 'dc-east', status: 'skipped', source: null, reason: 'needs 8 CPUs, has 2' },
      ],
    });
    expect(result).toEqual({
      workflowId: 'deploy:app:1.0.0:x',
      waited: true,
      image: 'app',
      version: '1.0.0',
      results: expect.any(Array),
      counts: null,
      incomplete: true,
    });
    expect(deploy.exitCode(result)).toBe(2);
    const lines = deploy.renderText(result);
    expect(lines[0]).toMatch(/^deploy incomplete: app@1\.0\.0 on 3 SDDCs: 1 deployed, 1 failed, 1 skipped/);
    expect(lines.join('\n')).not.toMatch(/^deployed/m);
    expect(lines.find((l) => l.startsWith('east-3'))).toMatch(/failed .*NoAgent: no agent$/);
    expect(lines.slice(lines.indexOf('skipped:'))).toEqual([
      'skipped:',
      expect.stringMatching(/^ {2}tiny +needs 8 CPUs, has 2$/),
    ]);
  });

  it('a complete deploy says deployed and exits 0', () => {
    const result = deploy.deployResult('w', {
      image: 'app',
      version: '1.0.0',
      results: [{ sddc: 'east-1', dataCenter: 'dc-east', status: 'already-present', source: null }],
    });
    expect(deploy.exitCode(result)).toBe(0);
    expect(deploy.renderText(result)[0]).toBe('deployed app@1.0.0 to 1 SDDC (1 already-present)  (workflow w)');
  });
});

describe('show run', () => {
  it('resolves latest and latest-pre through the catalog, and says when none is available', async () => {
    const asked: string[] = [];
    const catalog = {
      versions: {
        resolve: async (_image: string, ref: string) => {
          asked.push(ref);
          return undefined;
        },
      },
    } as unknown as Catalog;
    const deps = { ...fakeDeps().deps, catalog: async () => catalog };
    const err = await failureOf(() => show.run({ image: 'app', version: 'latest' }, deps));
    expect(err).toMatchObject({
      type: 'UnknownImage',
      message: expect.stringMatching(/^app has no available, non-deprecated release version \(for a pre-release: @latest-pre\)/),
    });
    expect((await failureOf(() => show.run({ image: 'app', version: 'latest-pre' }, deps))).message).toMatch(
      /^app has no available, non-deprecated version \(pre-releases included\)/,
    );
    expect(asked).toEqual(['latest', 'latest-pre']);
  });

  it('prints each SDDC’s latest attempt and where its copy originally came from', () => {
    const at = new Date('2026-01-01T00:00:00Z');
    const record = {
      image: 'app',
      version: '1.0.0',
      status: 'available',
      format: 'iso',
      sizeBytes: 2048,
      location: { storage: 'east', container: 'images', blob: 'app/1.0.0/app.iso' },
      replicas: [],
      channels: [],
      channelItems: [],
      deployments: [
        {
          image: 'app',
          version: '1.0.0',
          sddc: 'east-1',
          status: 'already-present',
          source: 'west',
          path: '/ds/app/1.0.0',
          updatedAt: at,
          attempts: [
            { status: 'deployed', source: 'east', at },
            { status: 'already-present', source: 'west', at },
          ],
          origin: { status: 'deployed', source: 'east', at },
        },
        {
          image: 'app',
          version: '1.0.0',
          sddc: 'west-1',
          status: 'deployed',
          source: 'west',
          path: '/ds/w',
          updatedAt: at,
          attempts: [{ status: 'deployed', source: 'west', at }],
          origin: { status: 'deployed', source: 'west', at },
        },
      ],
    } as unknown as show.ShowResult;
    const lines = show.renderText(record);
    expect(lines).toContainEqual(expect.stringMatching(/^SDDC +STATUS +ATTEMPTS +SOURCE +WHERE \/ REASON$/));
    expect(lines).toContainEqual(
      expect.stringMatching(
        /^east-1 +already-present \(not checked since 2026-01-01T00:00:00Z\) +2 +west \(originally from east\) +\/ds\/app\/1\.0\.0$/,
      ),
    );
    expect(lines).toContainEqual(
      expect.stringMatching(/^west-1 +deployed \(not checked since 2026-01-01T00:00:00Z\) +1 +west +\/ds\/w$/),
    );
  });

  it('notes what each verified replica’s copy sent between data centers, and the version it started from', () => {
    const record = {
      image: 'app',
      version: '2.0.0',
      status: 'available',
      format: 'iso',
      sizeBytes: 2 ** 20,
      location: { storage: 'east', container: 'images', blob: 'app/2.0.0/app.iso' },
      replicas: [
        { location: 'west', status: 'verified', crossed: { bytes: 256 * 1024, from: '1.0.0' } },
        { location: 'north', status: 'verified', crossed: { bytes: 2 ** 20 } },
        { location: 'south', status: 'stale', reason: 'blob is missing', crossed: { bytes: 1 } },
      ],
      channels: [],
      channelItems: [],
      deployments: [],
    } as unknown as show.ShowResult;
    const lines = show.renderText(record);
    expect(lines).toContainEqual(expect.stringMatching(/^west +verified +256 KiB crossed, started from 1\.0\.0$/));
    expect(lines).toContainEqual(expect.stringMatching(/^north +verified +1\.0 MiB crossed$/));
    expect(lines).toContainEqual(expect.stringMatching(/^south +stale +blob is missing$/));
  });
});

describe('publish run', () => {
  it('refuses a bad version, a bad image name or an unknown --deploy SDDC before reaching Temporal', async () => {
    const { deps, temporalCalls } = fakeDeps();
    const base = { source: 'x.iso', image: 'app', wait: true };
    expect((await failureOf(() => publish.run({ ...base, version: 'v1.0.0' }, deps))).message).toMatch(/drop the v/);
    expect((await failureOf(() => publish.run({ ...base, image: 'App', version: '1.0.0' }, deps))).type).toBe('InvalidInput');
    const source = path.join(deps.config.repositoryRoots[0], `cli-unit-${process.pid}.iso`);
    fs.mkdirSync(path.dirname(source), { recursive: true });
    fs.writeFileSync(source, 'x');
    try {
      const err = await failureOf(() => publish.run({ ...base, source, version: '1.0.0', deploy: ['east-9'] }, deps));
      expect(err).toMatchObject({ type: 'UnknownSddc', message: expect.stringMatching(/^--deploy east-9: no SDDC/) });
    } finally {
      fs.rmSync(source);
    }
    expect(temporalCalls).toEqual([]);
  });

  it('carries the workflow ID and the deploy rows in its JSON, and exits 2 when a deploy failed', () => {
    const result = publish.publishResult('publish:app:1.0.0', {
      image: 'app',
      version: '1.0.0',
      format: 'iso',
      sizeBytes: 2048,
      sha256: 'ab'.repeat(32),
      blockSize: 8 * 2 ** 20,
      blockCount: 1,
      location: { storage: 'east', container: 'images', blob: 'app/1.0.0/app-1.0.0.iso' },
      metadata: { kind: 'iso', volumeId: 'APP', bootable: false } as never,
      deploy: {
        workflowId: 'deploy:app:1.0.0:publish:app:1.0.0',
        results: [{ sddc: 'east-1', dataCenter: 'dc-east', status: 'failed', source: null, reason: 'disk full' }],
      },
    });
    expect(result).toMatchObject({
      workflowId: 'publish:app:1.0.0',
      waited: true,
      deploy: { workflowId: 'deploy:app:1.0.0:publish:app:1.0.0', counts: null, incomplete: true },
    });
    expect(publish.exitCode(result)).toBe(2);
    const text = publish.renderText(result).join('\n');
    expect(text).toMatch(/^published app@1\.0\.0/);
    expect(text).toMatch(/^deploy incomplete: app@1\.0\.0/m);
    expect(text).toMatch(/east-1 .*failed .*disk full$/m);
  });
});

describe('status run', () => {
  it('sets what is not known to null and writes the status lowercase', async () => {
    const handle = {
      workflowId: 'publish:app:1.0.0',
      describe: async () => ({
        type: 'PublishImage',
        status: { name: 'RUNNING' },
        startTime: new Date('2025-01-01T00:00:00Z'),
        closeTime: undefined,
        taskQueue: 'vm-images',
        typedSearchAttributes: { get: () => undefined },
      }),
      query: async () => {
        throw new Error('no worker');
      },
    };
    // A worker polled a moment ago: the run is served, though its query fails.
    const pollers = [{ lastAccessTime: { seconds: Math.floor(Date.now() / 1000) } }];
    const client = {
      options: { namespace: 'default' },
      workflow: { getHandle: () => handle },
      workflowService: { describeTaskQueue: async () => ({ pollers }) },
    } as unknown as Client;
    const catalog = { versions: { get: async () => null } } as unknown as Catalog;
    const deps: CliDeps = { config: loadConfig(), catalog: async () => catalog, temporal: async () => client };
    const result = await status.run({ workflowId: 'publish:app:1.0.0' }, deps);
    expect(result).toEqual({
      workflowId: 'publish:app:1.0.0',
      type: 'PublishImage',
      status: 'running',
      runId: null,
      resolvedFrom: null,
      taskQueue: 'vm-images',
      workerPolling: true,
      image: null,
      version: null,
      startTime: '2025-01-01T00:00:00.000Z',
      closeTime: null,
      progress: null,
      sddcs: [],
      result: null,
      failure: null,
    });
    expect(status.renderText(result)[0]).toBe('PublishImage publish:app:1.0.0: running');
    // No worker polled its queue lately: the run is named as one nobody polls.
    expect(status.renderText({ ...result, workerPolling: false })[0]).toBe(
      'PublishImage publish:app:1.0.0: running — no worker polls task queue vm-images',
    );
  });
});

describe('output', () => {
  it('tables have a header row and human sizes', () => {
    expect(table(['NAME', 'MEMORY'], [['east-1', formatMiB(524288)]])).toEqual(['NAME    MEMORY', 'east-1  512 GiB']);
  });

  it('an ETA is a time or nothing, never NaN or Infinity', () => {
    const rate = new PhaseRate();
    rate.update('staging', 0, 0);
    expect(formatEta(rate.eta(100))).toBe('');
    rate.update('staging', 0, 5000);
    expect(formatEta(rate.eta(100))).toBe('');
    rate.update('staging', 50, 10_000);
    expect(formatEta(rate.eta(100))).toBe('ETA 10s');
    // A new phase measures its own rate.
    rate.update('replicating', 0, 11_000);
    expect(rate.rate()).toBeUndefined();
    expect(formatEta(Infinity)).toBe('');
    expect(formatEta(NaN)).toBe('');
    expect(formatEta(3725)).toBe('ETA 1h 02m');
  });
});

describe('main', () => {
  it('under --json, an error is one JSON document on stdout', async () => {
    const io = capture();
    await main(['node', 'vmhub', 'show', 'Bad@1.0.0', '--json'], io);
    expect(JSON.parse(io.stdout)).toEqual({
      error: { type: 'InvalidInput', message: expect.stringMatching(/^Bad@1\.0\.0: "Bad" is not an image name \(try bad\)/) },
    });
    expect(process.exitCode).toBe(1);
    process.exitCode = 0;
  });

  it('without --json, an error is one line on stderr', async () => {
    const io = capture();
    await main(['node', 'vmhub', 'deploy', 'app@1.0', '--to', 'east-1'], io);
    expect(io.stdout).toBe('');
    expect(io.stderr).toBe(
      'vmhub: InvalidInput: app@1.0: "1.0" needs three numbers, MAJOR.MINOR.PATCH (e.g. 1.0.0), or latest, or latest-pre\n',
    );
    process.exitCode = 0;
  });

  // Checked before any service is reached: this suite runs none, so a command that reached one first
  // would fail ServiceUnavailable instead.
  it.each([
    ['publish', 'a.iso', '--image', 'Strict_App', '--version', '1.0.0'],
    ['deploy', 'Strict_App@1.0.0', '--to', 'east-1'],
    ['show', 'Strict_App@latest'],
    ['deprecate', 'Strict_App@1.0.0', '--end-of-life', '2027-01-31'],
    ['retire', 'Strict_App@1.0.0'],
    ['verify', 'Strict_App'],
    ['verify', 'Strict_App@1.0.0'],
    ['retention', 'set', 'Strict_App', '--keep', '2'],
    ['retention', 'show', 'Strict_App'],
    ['retention', 'clear', 'Strict_App'],
    ['runs', '--image', 'Strict_App'],
    ['images', '--image', 'Strict_App'],
  ])('%s %s: a bad image name is refused first, with the name it would accept', async (...args) => {
    const io = capture();
    await main(['node', 'vmhub', ...args, '--address', '127.0.0.1:1'], io);
    expect(io.stderr).toMatch(/^vmhub: InvalidInput: \S* ?"Strict_App" is not an image name \(try strict_app\): [^\n]*\n$/);
    expect(process.exitCode).toBe(1);
    process.exitCode = 0;
  });

  it('a missing required option is a usage error, also in JSON', async () => {
    const io = capture();
    const write = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      await main(['node', 'vmhub', 'deploy', 'app@1.0.0', '--json'], io);
    } finally {
      write.mockRestore();
    }
    expect(JSON.parse(io.stdout)).toEqual({
      error: { type: 'UsageError', message: "required option '--to <sddcs>' not specified" },
    });
    process.exitCode = 0;
  });
});

describe('services that cannot be reached', () => {
  it('Temporal: connects with a 3 s timeout and names the service, where it is, and how to start it', async () => {
    const connect = jest.spyOn(temporal, 'connectClient').mockRejectedValue(new Error('Failed to connect before the deadline'));
    try {
      const config = { ...loadConfig(), temporal: { address: '127.0.0.1:1', namespace: 'default' } };
      const err = await failureOf(() => connectTemporal(config));
      expect(connect).toHaveBeenCalledWith(config.temporal, { connectTimeoutMs: CONNECT_TIMEOUT_MS });
      expect(CONNECT_TIMEOUT_MS).toBeLessThanOrEqual(3000);
      expect(err).toMatchObject({ type: 'ServiceUnavailable' });
      expect(err.message).toMatch(
        /^cannot reach Temporal at 127\.0\.0\.1:1 \(Failed to connect before the deadline\); start the local services with `npm run services -- start`/,
      );
    } finally {
      connect.mockRestore();
    }
  });

  it('a MongoDB URI is shown without its password', () => {
    expect(redactUri('mongodb://user:secret@db.example:27017/vmhub')).toBe('mongodb://db.example:27017/vmhub');
  });
});
