import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { NativeConnection, Worker } from '@temporalio/worker';
import type { DeploymentRecord } from '../../src/catalog/deployment-records';
import type { ImageVersionRecord } from '../../src/catalog/image-records';
import type { RetryRow } from '../../src/cli/deploy-retry';
import type { DeployResult, DeployResultRow } from '../../src/shared/deploy-input';
import { silentAgents } from '../../src/cli/checks';
import { connectWorker } from '../../src/temporal/connection';
import { createAgentWorker } from '../../src/temporal/worker';
import { applianceDescriptor, archive, isoImage, ovaFromDescriptor } from '../images/build';
import { fixture } from '../images/fixtures';
import { makeTestPki, smallDescriptor, smallOva, smallPackage, type TestPki } from '../images/pki';
import { repositoryRoot, startWorld, type TestWorld, workflowFailure } from '../helpers';
import { ROOT, runVmhub, VMHUB, type Ran } from './run-vmhub';
import { freeLoopbackPort } from '../../src/engine/free-port';

const execFileAsync = promisify(execFile);

/** The vmhub CLI as an operator runs it, against the test services. */
describe('the vmhub CLI against the services', () => {
  let world: TestWorld;
  let env: NodeJS.ProcessEnv;
  const agents: Array<{ connection: NativeConnection; worker: Worker; running: Promise<void> }> = [];
  const id = randomUUID().slice(0, 6);
  const good = `cli-good-${id}`;
  const bad = `cli-bad-${id}`;
  const idle = `cli-idle-${id}`;
  const datastores = path.join(repositoryRoot(), '..', `cli-ds-${id}`);

  const vmhub = (...args: string[]): Promise<Ran> => runVmhub(args, env);

  async function startAgent(name: string): Promise<void> {
    const connection = await connectWorker(world.config.temporal);
    const worker = await createAgentWorker(connection, { ...world.config, datastore: path.join(datastores, name) }, name);
    agents.push({ connection, worker, running: worker.run() });
  }

  /** The agent of `bad` finds a link where the version's directory goes, and refuses to write there. */
  function breakDeploysOf(image: string, version: string): void {
    const outside = fs.mkdtempSync(path.join(datastores, '..', 'cli-outside-'));
    fs.mkdirSync(path.join(datastores, bad, image), { recursive: true });
    fs.symlinkSync(outside, path.join(datastores, bad, image, version));
  }

  let pki: TestPki;

  beforeAll(async () => {
    // The control plane trusts one test CA: an OVA signed under it is `verified`, one under another `untrusted`.
    pki = makeTestPki();
    const trustedCaFile = path.join(repositoryRoot(), '..', `cli-cas-${id}.pem`);
    fs.writeFileSync(trustedCaFile, pki.trustedRoot);
    world = await startWorld({ ovf: { trustedCaFile, requireManifest: false, requireVerifiedCertificate: false } });
    env = {
      ...process.env,
      VMHUB_TASK_QUEUE: world.config.taskQueue,
      MONGODB_URI: world.config.mongodbUri,
      VMHUB_LOG_LEVEL: 'ERROR',
    };
    for (const name of [good, bad, idle]) {
      await world.deps.catalog.sddcs.add({
        name,
        dataCenter: 'dc-west',
        taskQueue: `sddc-${name}`,
        capacity: { cpus: 8, memoryMiB: 16384, diskGiB: 100 },
      });
    }
    await startAgent(good);
    await startAgent(bad);
    isoImage(path.join(repositoryRoot(), `cli-${id}.iso`), { volumeId: 'CLI', bootable: true });
  });

  afterAll(async () => {
    for (const a of agents) a.worker.shutdown();
    await Promise.all(agents.map((a) => a.running));
    await Promise.all(agents.map((a) => a.connection.close()));
    await world.close();
  });

  const workflowIds = async (query: string): Promise<string[]> => {
    const ids: string[] = [];
    for await (const w of world.client.workflow.list({ query })) ids.push(w.workflowId);
    return ids;
  };

  it('refuses a typo in --to, and starts no workflow', async () => {
    const image = `cli-typo-${id}`;
    const published = await vmhub('publish', `cli-${id}.iso`, '--image', image, '--version', '1.0.0', '--json');
    expect(published.code).toBe(0);
    const typo = await vmhub('deploy', `${image}@1.0.0`, '--to', `${good},${good}x`);
    expect(typo.code).toBe(1);
    expect(typo.stderr).toBe(
      `vmhub: UnknownSddc: --to ${good}x: no SDDC of that name is registered (registered: ${[bad, good, idle].sort().join(', ')}); see \`vmhub sddc list\`\n`,
    );
    const queue = `TaskQueue = '${world.config.taskQueue}'`;
    // The publish is listed, so the list has caught up; no deploy of the image is.
    let ids: string[] = [];
    for (let i = 0; i < 50 && !ids.includes(`publish:${image}:1.0.0`); i++) {
      ids = await workflowIds(queue);
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(ids).toContain(`publish:${image}:1.0.0`);
    expect(ids.filter((w) => w.startsWith(`deploy:${image}:`))).toEqual([]);

    const runs = JSON.parse((await vmhub('runs', '--image', image, '--json')).stdout) as {
      runs: Array<{ workflowId: string; status: string }>;
    };
    expect(runs.runs).toEqual([expect.objectContaining({ workflowId: `publish:${image}:1.0.0`, status: 'completed' })]);
  });

  it('names the service it cannot reach and how to start it', async () => {
    const closed = await freeLoopbackPort();
    const temporal = await vmhub('runs', '--address', `127.0.0.1:${closed}`);
    expect(temporal.code).toBe(1);
    expect(temporal.stderr).toMatch(
      new RegExp(
        `^vmhub: ServiceUnavailable: cannot reach Temporal at 127\\.0\\.0\\.1:${closed} .*\`npm run services -- start\``,
      ),
    );
    env = { ...env, MONGODB_URI: `mongodb://127.0.0.1:${closed}/vmhub` };
    try {
      const mongo = await vmhub('images', '--json');
      expect(mongo.code).toBe(1);
      expect(JSON.parse(mongo.stdout)).toEqual({
        error: {
          type: 'ServiceUnavailable',
          message: expect.stringMatching(
            new RegExp(`^cannot reach MongoDB at mongodb://127\\.0\\.0\\.1:${closed}/vmhub .*\`npm run services -- start\``),
          ),
        },
      });
    } finally {
      env = { ...env, MONGODB_URI: world.config.mongodbUri };
    }
  });

  it('`vmhub images | head -1` ends cleanly', async () => {
    const image = `cli-pipe-${id}`;
    const now = new Date();
    const records: Array<Omit<ImageVersionRecord, 'replicas'>> = Array.from({ length: 1500 }, (_, i) => ({
      image,
      version: `1.0.${i}`,
      status: 'available',
      format: 'iso',
      sizeBytes: 2 ** 20,
      location: { storage: 'dc-east', container: 'images', blob: `${image}/1.0.${i}/${image}.iso` },
      blockSize: 2 ** 20,
      blockCount: 1,
      createdAt: now,
      updatedAt: now,
    }));
    await world.deps.catalog.versions.collection.insertMany(records);
    const { stdout, stderr } = await execFileAsync(
      'bash',
      ['-c', `set -o pipefail; "${process.execPath}" "${VMHUB}" images | head -1`],
      { env, cwd: ROOT },
    );
    expect(stdout).toMatch(/^IMAGE +VERSION +STATUS +FORMAT +SIZE/);
    expect(stderr).not.toMatch(/EPIPE|Error/);
  });

  it('publish --deploy --all-or-nothing refuses while an SDDC has no agent, and starts nothing', async () => {
    const image = `cli-noagent-${id}`;
    const publish = ['publish', `cli-${id}.iso`, '--image', image, '--version', '1.0.0'];
    const r = await vmhub(...publish, '--deploy', `${good},${idle}`, '--all-or-nothing');
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `vmhub: NoAgent: no agent has polled in the last 75 s for ${idle} (task queue sddc-${idle}), and --all-or-nothing deploys nowhere until every SDDC has one (without it, the deploy skips them); start it with \`npm run agent -- ${idle}\`\n`,
    );
    const alone = await vmhub(...publish, '--all-or-nothing');
    expect(alone.code).toBe(1);
    expect(alone.stderr).toMatch(/^vmhub: InvalidInput: --all-or-nothing applies to the deploy after the publish: give --deploy/);
    await expect(world.client.workflow.getHandle(`publish:${image}:1.0.0`).describe()).rejects.toThrow(/not found/i);
  });

  it('deploy --to all skips the SDDC with no agent and exits 2; all or nothing, or to that SDDC alone, deploys nothing; --retry deploys that one alone once it has an agent', async () => {
    const image = `cli-fleet-${id}`;
    expect((await vmhub('publish', `cli-${id}.iso`, '--image', image, '--version', '1.0.0')).code).toBe(0);
    const strict = await vmhub('deploy', `${image}@1.0.0`, '--to', 'all', '--all-or-nothing');
    expect(strict.code).toBe(1);
    expect(strict.stderr).toMatch(
      new RegExp(
        `^vmhub: NoAgent: no agent has polled in the last 75 s for ${idle} \\(task queue sddc-${idle}\\), and --all-or-nothing`,
      ),
    );
    // Named alone, an SDDC without an agent leaves nothing to deploy to.
    const alone = await vmhub('deploy', `${image}@1.0.0`, '--to', idle);
    expect(alone.code).toBe(1);
    expect(alone.stderr).toMatch(/, so there is nothing to deploy to; start it with `npm run agent -- cli-idle-/);
    // Started without the CLI's check (as with the Temporal CLI), the workflow's own plan refuses it.
    const refused = await workflowFailure(
      world.client.workflow.execute('DeployToSDDCs', {
        args: [{ image, version: '1.0.0', sddcs: 'all', allOrNothing: true }],
        taskQueue: world.config.taskQueue,
        workflowId: `deploy:${image}:1.0.0:${randomUUID()}`,
      }),
    );
    expect(refused.type).toBe('NoAgent');
    expect(refused.message).toMatch(new RegExp(`^all or nothing: no agent has polled in the last five minutes for ${idle} `));
    const refusedRows = (refused.details![0] as DeployResult).results;
    expect(refusedRows.filter((r) => r.status === 'failed').map((r) => r.sddc)).toEqual([idle]);
    expect(await world.deps.catalog.deployments.of(image, '1.0.0')).toEqual([]);

    const r = await vmhub('deploy', `${image}@1.0.0`, '--to', 'all', '--json');
    expect(r.code).toBe(2);
    const out = JSON.parse(r.stdout) as { incomplete: boolean; results: DeployResultRow[] };
    expect(out.incomplete).toBe(true);
    const status = Object.fromEntries(out.results.map((row) => [row.sddc, row.status]));
    expect(status).toMatchObject({ [good]: 'deployed', [bad]: 'deployed', [idle]: 'skipped' });
    // Every SDDC registered without an agent is skipped, the rest deployed.
    for (const row of out.results.filter((x) => x.sddc !== good && x.sddc !== bad)) {
      expect(row).toMatchObject({
        status: 'skipped',
        reason: expect.stringMatching(/^no agent: nothing polled task queue sddc-/),
      });
    }
    const recorded = await world.deps.catalog.deployments.of(image, '1.0.0');
    expect(recorded.find((d) => d.sddc === idle)).toMatchObject({ status: 'skipped' });

    // Once its agent runs, `deploy --retry` deploys that SDDC alone, and leaves the others' records as they are.
    const run = (JSON.parse(r.stdout) as { workflowId: string }).workflowId;
    await startAgent(idle);
    const idleRecord = (await world.deps.catalog.sddcs.get(idle))!;
    for (let i = 0; i < 100 && (await silentAgents(world.client, [idleRecord])).length > 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const dry = await vmhub('deploy', '--retry', run, '--dry-run');
    expect(dry.code).toBe(0);
    expect(dry.stdout).toMatch(new RegExp(`^retry of ${run}: would deploy again ${image}@1\\.0\\.0 to 1 SDDC:\n`));
    expect(dry.stdout).toMatch(new RegExp(`^  ${idle} +skipped +no agent: `, 'm'));
    expect(dry.stdout).toMatch(/^nothing started \(--dry-run\)$/m);

    const retried = await vmhub('deploy', '--retry', run, '--json');
    expect(retried.code).toBe(0);
    const again = JSON.parse(retried.stdout) as {
      retried: RetryRow[];
      deploy: { workflowId: string; results: DeployResultRow[] };
    };
    expect(again.retried.map((row) => row.sddc)).toEqual([idle]);
    expect(again.deploy.results.map((row) => [row.sddc, row.status])).toEqual([[idle, 'deployed']]);
    // The new run was given exactly that SDDC, and the version, not `all` and `latest`.
    const started = (await world.client.workflow.getHandle(again.deploy.workflowId).fetchHistory()).events![0];
    const payload = started.workflowExecutionStartedEventAttributes!.input!.payloads![0];
    expect(JSON.parse(Buffer.from(payload.data!).toString())).toEqual({ image, version: '1.0.0', sddcs: [idle] });
    const others = (records: DeploymentRecord[]) => records.filter((d) => d.sddc !== idle);
    expect(others(await world.deps.catalog.deployments.of(image, '1.0.0'))).toEqual(others(recorded));

    const nothing = await vmhub('deploy', '--retry', again.deploy.workflowId);
    expect(nothing).toMatchObject({ code: 0, stdout: 'nothing to retry: every SDDC was deployed or already present\n' });
  });

  it('a deploy with one failing SDDC exits 2 and prints its reason', async () => {
    const image = `cli-fail-${id}`;
    expect((await vmhub('publish', `cli-${id}.iso`, '--image', image, '--version', '1.0.0')).code).toBe(0);
    breakDeploysOf(image, '1.0.0');
    const r = await vmhub('deploy', `${image}@1.0.0`, '--to', `${good},${bad}`);
    expect(r.code).toBe(2);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toMatch(new RegExp(`^deploy incomplete: ${image}@1\\.0\\.0 on 2 SDDCs: .*1 deployed.*1 failed`));
    expect(lines.find((l) => l.startsWith(good))).toMatch(/ deployed /);
    expect(lines.find((l) => l.startsWith(bad))).toMatch(/ failed .*link/);
  });

  it('a deploy with one failed and one skipped SDDC ends Failed (DeployIncomplete), exits 2 and prints both reasons', async () => {
    const image = `cli-partial-${id}`;
    const ova = `cli-partial-${id}.ova`;
    ovaFromDescriptor(path.join(repositoryRoot(), ova), fixture('govmomi__ttylinux-pc_i486-16.1.ovf'));
    expect((await vmhub('publish', ova, '--image', image, '--version', '1.0.0')).code).toBe(0);
    // 16 MiB of memory, against the 32 MiB ttylinux needs: skipped, so it needs no agent either.
    const small = `cli-small-${id}`;
    await world.deps.catalog.sddcs.add({
      name: small,
      dataCenter: 'dc-west',
      taskQueue: `sddc-${small}`,
      capacity: { cpus: 1, memoryMiB: 16, diskGiB: 1 },
    });
    breakDeploysOf(image, '1.0.0');
    const r = await vmhub('deploy', `${image}@1.0.0`, '--to', `${good},${bad},${small}`);
    expect(r.code).toBe(2);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toMatch(/^deploy incomplete: .* 1 deployed, 1 failed, 1 skipped/);
    expect(lines.find((l) => l.startsWith(bad))).toMatch(/ failed .*link/);
    expect(lines.slice(lines.findIndex((l) => /^skipped/.test(l))).find((l) => l.includes(small))).toMatch(/memory/i);
    const [deployId] = await workflowIds(`VmImage="${image}" AND WorkflowType="DeployToSDDCs"`);
    const d = await world.client.workflow.getHandle(deployId).describe();
    expect(d.status.name).toBe('FAILED');
    const failure = await world.client.workflow
      .getHandle(deployId)
      .result()
      .catch((e: unknown) => (e as { cause?: { type?: string } }).cause);
    expect(failure).toMatchObject({ type: 'DeployIncomplete' });
  });

  it('publish --deploy follows the deploy, prints each SDDC and exits 2 when one failed', async () => {
    const image = `cli-pubdeploy-${id}`;
    breakDeploysOf(image, '1.0.0');
    const r = await vmhub(
      'publish',
      `cli-${id}.iso`,
      '--image',
      image,
      '--version',
      '1.0.0',
      '--deploy',
      `${good},${bad}`,
      '--json',
    );
    expect(r.code).toBe(2);
    const out = JSON.parse(r.stdout);
    expect(out).toMatchObject({
      workflowId: `publish:${image}:1.0.0`,
      deploy: {
        incomplete: true,
        results: expect.arrayContaining([
          expect.objectContaining({ sddc: good, status: 'deployed' }),
          expect.objectContaining({ sddc: bad, status: 'failed', reason: expect.stringMatching(/link/) }),
        ]),
      },
    });
  });

  it("show resolves @latest to the highest release and @latest-pre to a newer pre-release, with each SDDC's attempts", async () => {
    const image = `cli-latest-${id}`;
    const now = new Date();
    const version = (v: string): Omit<ImageVersionRecord, 'replicas'> => ({
      image,
      version: v,
      status: 'available',
      format: 'iso',
      sizeBytes: 2 ** 20,
      location: { storage: 'dc-east', container: 'images', blob: `${image}/${v}/${image}.iso` },
      blockSize: 2 ** 20,
      blockCount: 1,
      createdAt: now,
      updatedAt: now,
    });
    await world.deps.catalog.versions.collection.insertMany([version('1.0.0'), version('1.1.0-rc.1'), version('0.9.0')]);
    const at = { image, version: '1.0.0', sddc: good };
    await world.deps.catalog.deployments.record({ ...at, status: 'deployed', source: 'dc-east', path: '/ds/a' });
    await world.deps.catalog.deployments.record({ ...at, status: 'already-present', source: 'dc-west', path: '/ds/a' });

    const latest = await vmhub('show', `${image}@latest`, '--json');
    expect(latest.code).toBe(0);
    const release = JSON.parse(latest.stdout);
    expect(release).toMatchObject({ image, version: '1.0.0' });
    expect(release.deployments).toEqual([
      expect.objectContaining({
        sddc: good,
        status: 'already-present',
        source: 'dc-west',
        attempts: [
          expect.objectContaining({ status: 'deployed', source: 'dc-east' }),
          expect.objectContaining({ status: 'already-present', source: 'dc-west' }),
        ],
        origin: expect.objectContaining({ status: 'deployed', source: 'dc-east' }),
      }),
    ]);
    const text = await vmhub('show', `${image}@latest`);
    expect(text.stdout.split('\n')[0]).toMatch(new RegExp(`^${image}@1\\.0\\.0 +available`));
    expect(text.stdout).toMatch(
      new RegExp(`^${good} +already-present \\(not checked since [0-9T:-]+Z\\) +2 +dc-west \\(originally from dc-east\\)`, 'm'),
    );

    const pre = await vmhub('show', `${image}@latest-pre`, '--json');
    expect(pre.code).toBe(0);
    expect(JSON.parse(pre.stdout)).toMatchObject({ image, version: '1.1.0-rc.1', deployments: [] });

    const none = await vmhub('show', `cli-none-${id}@latest-pre`);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(
      /^vmhub: UnknownImage: cli-none-.* has no available, non-deprecated version \(pre-releases included\)/,
    );
  });

  it('diff compares two published OVAs: what changed in the descriptor, and the blocks a holder of the first already has', async () => {
    const image = `cli-diff-${id}`;
    const publishVersion = async (version: string, cpus: number, networks: string[], ntp: string) => {
      const descriptor = applianceDescriptor({
        cpus,
        networks,
        disks: [['d1', String(2 ** 30), 'disk1.vmdk']],
        properties: `<Property ovf:key="ntp" ovf:type="string" ovf:userConfigurable="true" ovf:value="${ntp}"/>`,
      });
      // Descriptors of one length put the disk at one offset, so every block after the first holds the same bytes.
      ovaFromDescriptor(path.join(repositoryRoot(), `${image}-${version}.ova`), descriptor.padEnd(4096), {
        fileSize: world.config.blockSizeBytes + 2 ** 20,
      });
      await world.client.workflow.execute('PublishImage', {
        args: [{ source: `${image}-${version}.ova`, image, version }],
        taskQueue: world.config.taskQueue,
        workflowId: `publish:${image}:${version}`,
      });
    };
    await Promise.all([
      publishVersion('1.0.0', 2, ['VM Network'], 'a.ntp'),
      publishVersion('1.1.0', 4, ['VM Network', 'mgmt'], 'b.ntp'),
    ]);

    const json = await vmhub('diff', `${image}@1.0.0`, `${image}@latest`, '--json');
    expect(json.code).toBe(0);
    const d = JSON.parse(json.stdout);
    expect(d).toMatchObject({ a: { version: '1.0.0' }, b: { version: '1.1.0' }, identical: false });
    expect(d.a.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(d.metadata.hardware).toEqual([{ field: 'cpus', a: 2, b: 4 }]);
    expect(d.metadata.networks).toEqual({ added: ['mgmt'], removed: [], same: 1 });
    expect(d.metadata.disks).toEqual({ added: [], removed: [], resized: [], same: 1 });
    expect(d.metadata.properties.changed).toEqual([
      expect.objectContaining({
        id: 'app.ntp.vm',
        a: expect.objectContaining({ default: 'a.ntp' }),
        b: expect.objectContaining({ default: 'b.ntp' }),
      }),
    ]);
    expect(d.blocks).toEqual({
      sharedBlocks: d.b.blockCount - 1,
      blockCount: d.b.blockCount,
      sharedBytes: d.b.sizeBytes - d.b.blockSize,
      sizeBytes: d.b.sizeBytes,
    });
    expect(d.b.blockCount).toBe(2);

    const text = await vmhub('diff', `${image}@1.0.0`, `${image}@1.1.0`);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^hardware +~ CPUs: 2 → 4$/m);
    expect(text.stdout).toMatch(/^disks +same \(1 disk\)$/m);
    expect(text.stdout).toMatch(
      /^properties +~ app\.ntp\.vm: default "a\.ntp", user-configurable → default "b\.ntp", user-configurable$/m,
    );
    expect(text.stdout).toMatch(new RegExp(`^blocks shared +1 of 2 blocks of ${image}@1\\.1\\.0 \\(50\\.0 %`, 'm'));
  });

  it('records an OVF certificate as verified or untrusted and shows it; an SDDC whose policy refuses a version fails its row, the others deploy', async () => {
    const image = `cli-signed-${id}`;
    const strict = `cli-strict-${id}`;
    const publishing = (version: string, bytes: Buffer) => {
      fs.writeFileSync(path.join(repositoryRoot(), `${image}-${version}.ova`), bytes);
      return world.client.workflow.execute('PublishImage', {
        args: [{ source: `${image}-${version}.ova`, image, version }],
        taskQueue: world.config.taskQueue,
        workflowId: `publish:${image}:${version}`,
      });
    };
    const publishOva = async (version: string, bytes: Buffer) => {
      await publishing(version, bytes);
      return (await world.deps.catalog.versions.get(image, version))?.metadata;
    };
    const secondDescriptor = archive([...smallPackage({ seed: 5 }), { name: 'b.ovf', bytes: smallDescriptor }]);
    const [trusted, untrusted, unlisted, twoDescriptors] = await Promise.all([
      publishOva('1.0.0', smallOva({ signer: pki.trusted })),
      publishOva('1.0.1', smallOva({ signer: pki.untrusted, seed: 3 })),
      publishOva('1.0.2', smallOva({ manifest: false, seed: 4 })),
      workflowFailure(publishing('1.0.3', secondDescriptor)),
    ]);
    expect(twoDescriptors).toMatchObject({ type: 'UnreferencedMember', message: expect.stringMatching(/"b\.ovf"/) });
    expect((await world.deps.catalog.versions.get(image, '1.0.3'))?.status).not.toBe('available');
    expect(trusted).toMatchObject({
      certificate: { status: 'verified', subject: 'O=vmhub tests, CN=publisher', notAfter: expect.any(String) },
    });
    expect(untrusted).toMatchObject({ certificate: { status: 'untrusted', subject: 'O=vmhub tests, CN=stranger' } });
    expect(unlisted).toMatchObject({ certificate: { status: 'none' } });
    const shown = await vmhub('show', `${image}@1.0.0`);
    expect(shown.stdout).toMatch(/^ovf cert +verified \(subject O=vmhub tests, CN=publisher; expires \d{4}-/m);
    expect(shown.stdout).toMatch(/^manifest +a\.mf$/m);

    // The policy refuses before any agent is asked: `strict` has none.
    const capacity = { cpus: 8, memoryMiB: 16384, diskGiB: 100 };
    await world.deps.catalog.sddcs.create({
      name: strict,
      dataCenter: 'dc-west',
      taskQueue: `sddc-${strict}`,
      capacity,
      ovfPolicy: { requireVerifiedCertificate: true },
    });
    const deployIds: string[] = [];
    const deploy = async (version: string, sddcs: string[]) => {
      deployIds.push(`deploy:${image}:${version}:${randomUUID()}`);
      const failure = await workflowFailure(
        world.client.workflow.execute('DeployToSDDCs', {
          args: [{ image, version, sddcs }],
          taskQueue: world.config.taskQueue,
          workflowId: deployIds[deployIds.length - 1],
        }),
      );
      expect(failure.type).toBe('DeployIncomplete');
      const rows = await world.deps.catalog.deployments.of(image, version);
      return Object.fromEntries(rows.map((r) => [r.sddc, { status: r.status, error: r.error }]));
    };
    expect(await deploy('1.0.1', [good, strict])).toEqual({
      [good]: { status: 'deployed', error: undefined },
      [strict]: {
        status: 'failed',
        error: expect.stringMatching(
          new RegExp(`^PolicyRefused: SDDC ${strict} requires a verified OVF certificate, and the image's is untrusted`),
        ),
      },
    });
    // A policy refusal is final: a retry of that deploy leaves it, and has nothing else to do.
    const retry = await vmhub('deploy', '--retry', deployIds[0], '--dry-run', '--json');
    expect(retry.code).toBe(0);
    expect(JSON.parse(retry.stdout)).toMatchObject({
      retryOf: deployIds[0],
      version: '1.0.1',
      retried: [],
      final: [{ sddc: strict, status: 'failed', reason: expect.stringMatching(/^PolicyRefused: /) }],
      deploy: null,
    });
    // Each demand changes on its own.
    await world.deps.catalog.sddcs.update(strict, { ovfPolicy: { requireManifest: true, requireVerifiedCertificate: false } });
    expect((await world.deps.catalog.sddcs.get(strict))?.ovfPolicy).toEqual({
      requireManifest: true,
      requireVerifiedCertificate: false,
    });
    expect(await deploy('1.0.2', [strict])).toEqual({
      [strict]: { status: 'failed', error: `PolicyRefused: SDDC ${strict} requires a manifest, and the image has none` },
    });
  });

  it('sddc add registers with a plain size in GiB; update changes only the fields given', async () => {
    const name = `cli-reg-${id}`;
    const added = await vmhub(
      'sddc',
      'add',
      name,
      '--dc',
      'dc-west',
      '--cpus',
      '8',
      '--memory',
      '256',
      '--disk',
      '2TiB',
      '--json',
    );
    expect(added.code).toBe(0);
    expect(JSON.parse(added.stdout)).toMatchObject({
      name,
      dataCenter: 'dc-west',
      taskQueue: `sddc-${name}`,
      capacity: { cpus: 8, memoryMiB: 256 * 1024, diskGiB: 2048 },
      target: { kind: 'directory' },
    });

    const again = await vmhub('sddc', 'add', name, '--dc', 'dc-east', '--json');
    expect(again.code).toBe(1);
    expect(JSON.parse(again.stdout).error).toMatchObject({
      type: 'SddcExists',
      message: expect.stringContaining(`vmhub sddc update ${name}`),
    });

    const updated = await vmhub('sddc', 'update', name, '--cpus', '16', '--json');
    expect(updated.code).toBe(0);
    const record = JSON.parse(updated.stdout);
    expect(record).toMatchObject({
      name,
      dataCenter: 'dc-west',
      taskQueue: `sddc-${name}`,
      capacity: { cpus: 16, memoryMiB: 256 * 1024, diskGiB: 2048 },
      target: { kind: 'directory' },
    });
    expect(record.updatedAt).toEqual(expect.any(String));

    const shown = await vmhub('sddc', 'show', name);
    expect(shown.stdout).toMatch(/^capacity +16 CPUs, 256 GiB memory, 2\.0 TiB disk$/m);

    const unknown = await vmhub('sddc', 'update', `${name}x`, '--cpus', '4');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(new RegExp(`^vmhub: UnknownSddc: SDDC ${name}x is not registered \\(registered: .*${name}`));

    expect((await vmhub('sddc', 'remove', name)).code).toBe(0);
    expect(await world.deps.catalog.sddcs.get(name)).toBeNull();
  });

  it('draws progress on a terminal with no NaN, Infinity or garbled ETA', async () => {
    const file = `cli-big-${id}.iso`;
    isoImage(path.join(repositoryRoot(), file), { volumeId: 'BIG', extraBytes: 96 * 2 ** 20 });
    const command = [
      process.execPath,
      VMHUB,
      'publish',
      file,
      '--image',
      `cli-tty-${id}`,
      '--version',
      '1.0.0',
      '--format',
      'iso',
      '--deploy',
      good,
    ]
      .map((a) => `'${a}'`)
      .join(' ');
    const ran = await execFileAsync('script', ['-qec', command, '/dev/null'], {
      env: { ...env, TERM: 'xterm', COLUMNS: '160' },
      cwd: ROOT,
      maxBuffer: 64 * 2 ** 20,
    }).then(
      (r) => ({ code: 0, stdout: r.stdout }),
      (e: { code: number; stdout: string }) => ({ code: e.code, stdout: e.stdout }),
    );
    const screen = ran.stdout;
    expect(screen).toMatch(/publish .*%/);
    // The publish's bar only moves forward, frame after frame: replication has a bar of its own.
    const publishPercents = [...screen.matchAll(/ publish +[\u2588\u2591]+ (\d+)%/g)].map((m) => Number(m[1]));
    expect(publishPercents.length).toBeGreaterThan(0);
    expect(publishPercents).toEqual([...publishPercents].sort((a, b) => a - b));
    expect(screen).not.toMatch(/NaN|Infinity|NFs|LLs|undefined/);
    for (const eta of screen.match(/ETA [^|\r\n]*/g) ?? []) expect(eta.trim()).toMatch(/^ETA (\d+s|\d+m \d\ds|\d+h \d\dm)$/);
    expect(screen).toMatch(new RegExp(`published cli-tty-${id}@1\\.0\\.0`));
    expect(ran.code).toBe(0);
  });
});
