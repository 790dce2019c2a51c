import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import type { Catalog, ImageVersionRecord, SddcRecord } from '../../src/catalog/catalog';
import { loadConfig } from '../../src/config';
import { VmhubError } from '../../src/errors';
import * as temporal from '../../src/temporal';
import { checkImageName, checkVersion, parseRef, parseSddcList, resolveSourceArg } from '../../src/cli/checks';
import * as deploy from '../../src/cli/deploy';
import type { CliDeps } from '../../src/cli/deps';
import { parseFits } from '../../src/cli/images';
import { formatMiB, table, type CliIo } from '../../src/cli/output';
import { main } from '../../src/cli/program';
import { formatEta, PhaseRate } from '../../src/cli/progress';
import * as publish from '../../src/cli/publish';
import { parseLimit, runsQuery } from '../../src/cli/runs';
import { connectTemporal, CONNECT_TIMEOUT_MS, redactUri } from '../../src/cli/services';
import { parseCapacitySize, parseCpus } from '../../src/cli/sddc';
import * as status from '../../src/cli/status';

/** The error a call throws, to look at its type and message. */
async function failureOf(fn: () => unknown): Promise<{ type: string; message: string }> {
  try {
    await fn();
  } catch (err) {
    return err as { type: string; message: string };
  }
  throw new Error('expected a failure');
}

function capture(): CliIo & { stdout: string; stderr: string } {
  const io = {
    stdout: '',
    stderr: '',
    out: (t: string) => void (io.stdout += t),
    err: (t: string) => void (io.stderr += t),
    progress: process.stderr,
    tty: false,
  };
  return io;
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
    listSddcs: async () => [sddc('east-1'), sddc('west-1')],
    getVersion: async (image: string, version: string) =>
      (versions.find((v) => v.image === image && v.version === version) as ImageVersionRecord | undefined) ?? null,
    latest: async () => undefined,
    listVersions: async () => versions as ImageVersionRecord[],
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
    ['v1.0.0', /^--version v1\.0\.0: drop the v, e\.g\. 1\.0\.0$/],
    ['1.0', /use MAJOR\.MINOR\.PATCH, e\.g\. 1\.0\.0/],
    ['2', /use MAJOR\.MINOR\.PATCH, e\.g\. 2\.0\.0/],
    ['latest-ish', /is not a semantic version: use MAJOR\.MINOR\.PATCH, e\.g\. 1\.0\.0/],
  ])('version %s', async (version, message) => {
    const err = await failureOf(() => checkVersion(version));
    expect(err).toBeInstanceOf(VmhubError);
    expect(err).toMatchObject({ type: 'InvalidInput', message: expect.stringMatching(message) });
  });

  it('accepts semantic versions, pre-releases included', () => {
    expect(checkVersion('1.2.3')).toBe('1.2.3');
    expect(checkVersion('1.0.0-rc.1')).toBe('1.0.0-rc.1');
  });

  it('names the flag and suggests the lowercase image name, without a regex', async () => {
    const err = await failureOf(() => checkImageName('Tools'));
    expect(err.message).toMatch(/^--image "Tools" is not a valid image name \(did you mean tools\?\)/);
    expect(err.message).not.toMatch(/\^|\$/);
  });

  it('reads image@version and image@latest, and says what a ref looks like', async () => {
    expect(parseRef('ubuntu-app@2.3.1')).toEqual({ image: 'ubuntu-app', version: '2.3.1' });
    expect(parseRef('ubuntu-app@latest')).toEqual({ image: 'ubuntu-app', version: 'latest' });
    expect((await failureOf(() => parseRef('ubuntu-app'))).message).toMatch(/e\.g\. ubuntu-app@2\.3\.1/);
    expect((await failureOf(() => parseRef('nover@v1.0.0'))).message).toBe('nover@v1.0.0: drop the v, e.g. 1.0.0');
  });

  it('names the SDDC given twice, and the flag', async () => {
    expect(parseSddcList('east-1, west-1', '--to')).toEqual(['east-1', 'west-1']);
    expect((await failureOf(() => parseSddcList('east-1,west-1,east-1', '--to'))).message).toBe('--to lists east-1 twice');
    expect((await failureOf(() => parseSddcList('East-1', '--to'))).message).toMatch(/did you mean east-1\?/);
  });

  describe('publish sources given as paths', () => {
    const base = fs.mkdtempSync(path.join(os.tmpdir(), 'vmhub-cli-source-'));
    const root = path.join(base, 'repository');
    const other = path.join(base, 'other');
    fs.mkdirSync(path.join(root, 'sub'), { recursive: true });
    fs.mkdirSync(other, { recursive: true });
    fs.writeFileSync(path.join(root, 'sub', 'a.iso'), 'x');
    fs.writeFileSync(path.join(other, 'b.iso'), 'x');
    afterAll(() => fs.rmSync(base, { recursive: true, force: true }));

    it('accepts a path relative to the current directory, an absolute one, and one relative to the root', () => {
      expect(resolveSourceArg('repository/sub/a.iso', [root], base)).toBe(path.join('sub', 'a.iso'));
      expect(resolveSourceArg(path.join(root, 'sub', 'a.iso'), [root], '/')).toBe(path.join('sub', 'a.iso'));
      expect(resolveSourceArg('sub/a.iso', [root], other)).toBe('sub/a.iso');
      expect(resolveSourceArg('https://images.example.com/a.iso', [root], base)).toBe('https://images.example.com/a.iso');
    });

    it('outside every root, names the roots and how to add one', async () => {
      const err = await failureOf(() => resolveSourceArg('other/b.iso', [root], base));
      expect(err).toMatchObject({ type: 'InvalidSource' });
      expect(err.message).toContain(`outside the repository roots (${root})`);
      expect(err.message).toContain('VMHUB_REPOSITORY_ROOTS');
    });

    it('a file found nowhere says where it was looked for', async () => {
      const err = await failureOf(() => resolveSourceArg('nope.iso', [root], base));
      expect(err.message).toContain(path.join(base, 'nope.iso'));
      expect(err.message).toContain(root);
    });
  });

  it('parses sizes with units and refuses the rest', async () => {
    expect(parseCapacitySize('--memory', '256GiB')).toBe(256 * 1024);
    expect(parseCapacitySize('--disk', '4TiB')).toBe(4096);
    expect((await failureOf(() => parseCapacitySize('--memory', '256'))).message).toMatch(/has no unit/);
    expect((await failureOf(() => parseCapacitySize('--memory', '12KiB'))).message).toMatch(/less than 1 MiB/);
    expect(parseCpus('16')).toBe(16);
    for (const bad of ['-4', '2.5', 'lots', '0']) expect((await failureOf(() => parseCpus(bad))).type).toBe('InvalidInput');
    expect(parseFits('cpus=4,memory=8GiB,disk=100GiB')).toEqual({ cpus: 4, memoryMiB: 8192, diskBytes: 100 * 2 ** 30 });
    expect((await failureOf(() => parseFits('cpus=lots'))).type).toBe('InvalidInput');
    expect(parseLimit('5')).toBe(5);
    expect(runsQuery('ubuntu-app')).toBe("WorkflowType IN ('PublishImage', 'DeployToSDDCs') AND VmImage = 'ubuntu-app'");
    expect(() => runsQuery("x' OR 1=1")).toThrow(VmhubError);
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
        typedSearchAttributes: { get: () => undefined },
      }),
      query: async () => {
        throw new Error('no worker');
      },
    };
    const client = { workflow: { getHandle: () => handle } } as unknown as Client;
    const deps: CliDeps = { config: loadConfig(), catalog: async () => ({}) as Catalog, temporal: async () => client };
    const result = await status.run({ workflowId: 'publish:app:1.0.0' }, deps);
    expect(result).toEqual({
      workflowId: 'publish:app:1.0.0',
      type: 'PublishImage',
      status: 'running',
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
      error: { type: 'InvalidInput', message: expect.stringMatching(/did you mean bad\?/) },
    });
    expect(process.exitCode).toBe(1);
    process.exitCode = 0;
  });

  it('without --json, an error is one line on stderr', async () => {
    const io = capture();
    await main(['node', 'vmhub', 'deploy', 'app@1.0', '--to', 'east-1'], io);
    expect(io.stdout).toBe('');
    expect(io.stderr).toBe(
      'vmhub: InvalidInput: app@1.0 is not a semantic version: use MAJOR.MINOR.PATCH, e.g. 1.0.0 (a pre-release or build may follow: 1.0.0-rc.1, 1.0.0+build.5)\n',
    );
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
