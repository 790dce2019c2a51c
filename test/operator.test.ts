import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { NativeConnection, Worker } from '@temporalio/worker';
import { chromium } from 'playwright-core';
import type { DeployResult, FleetProgress } from '../src/shared/deploy-input';
import type { PublishResult } from '../src/shared/publish-input';
import { temporalBinary } from '../src/dev-services/tools';
import { connectWorker } from '../src/temporal/connection';
import { createAgentWorker } from '../src/temporal/worker';
import { until } from './harness/worker-process';
import { isoImage } from './images/build';
import { repositoryRoot, startWorld, type TestWorld } from './helpers';

const run = promisify(execFile);
const ROOT = path.resolve(__dirname, '..');

/** What operators touch: the Temporal CLI, the vmhub CLI and the Temporal Web UI, all against the real services. */
describe('operator experience', () => {
  let world: TestWorld;
  let agentConnection: NativeConnection;
  let agent: Worker;
  let agentRun: Promise<void>;
  const sddc = `ops-${randomUUID().slice(0, 6)}`;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    world = await startWorld();
    env = {
      ...process.env,
      VMHUB_TASK_QUEUE: world.config.taskQueue,
      MONGODB_URI: world.config.mongodbUri,
      VMHUB_LOG_LEVEL: 'ERROR',
    };
    await world.deps.catalog.sddcs.add({
      name: sddc,
      dataCenter: 'dc-west',
      taskQueue: `sddc-${sddc}`,
      capacity: { cpus: 8, memoryMiB: 16384, diskGiB: 100 },
    });
    agentConnection = await connectWorker(world.config.temporal);
    agent = await createAgentWorker(agentConnection, world.config, sddc);
    agentRun = agent.run();
    isoImage(path.join(repositoryRoot(), 'ops.iso'), { volumeId: 'OPS', bootable: true });
  });
  afterAll(async () => {
    agent.shutdown();
    await agentRun;
    await agentConnection.close();
    await world.close();
  });

  const temporal = (...args: string[]) => run(temporalBinary(), [...args, '--address', world.config.temporal.address], { env });
  const vmhub = (...args: string[]) => run(process.execPath, [path.join(ROOT, 'bin', 'vmhub.js'), ...args], { env, cwd: ROOT });

  it('publishes and deploys from the Temporal CLI, and answers the progress query there', async () => {
    const id = `publish:ops-temporal:1.0.0`;
    const input = JSON.stringify({ source: 'ops.iso', image: 'ops-temporal', version: '1.0.0' });
    await temporal(
      'workflow',
      'start',
      '--type',
      'PublishImage',
      '--task-queue',
      world.config.taskQueue,
      '--workflow-id',
      id,
      '--input',
      input,
    );
    const { stdout } = await temporal('workflow', 'result', '--workflow-id', id, '--output', 'json');
    const published = JSON.parse(stdout) as { result: PublishResult } & PublishResult;
    expect((published.result ?? published).metadata).toMatchObject({ kind: 'iso', volumeId: 'OPS', bootable: true });

    const query = await temporal('workflow', 'query', '--workflow-id', id, '--name', 'progress', '--output', 'json');
    expect(JSON.parse(query.stdout)).toMatchObject({ queryResult: [{ phase: 'done', blocksStaged: expect.any(Number) }] });

    const deployId = `deploy:ops-temporal:1.0.0:cli`;
    const deployInput = JSON.stringify({ image: 'ops-temporal', version: 'latest', sddcs: [sddc] });
    await temporal(
      'workflow',
      'start',
      '--type',
      'DeployToSDDCs',
      '--task-queue',
      world.config.taskQueue,
      '--workflow-id',
      deployId,
      '--input',
      deployInput,
    );
    const deployed = JSON.parse((await temporal('workflow', 'result', '--workflow-id', deployId, '--output', 'json')).stdout);
    const result = (deployed.result ?? deployed) as DeployResult;
    expect(result.results).toEqual([expect.objectContaining({ sddc, status: 'deployed', source: 'west-replica' })]);
    const progressOf = async (workflowId: string) =>
      JSON.parse(
        (await temporal('workflow', 'query', '--workflow-id', workflowId, '--name', 'progress', '--output', 'json')).stdout,
      ).queryResult[0];
    // The deploy's progress counts and names its batches; a batch's has a row per SDDC.
    const progress = (await progressOf(deployId)) as FleetProgress;
    expect(progress.counts).toEqual({ deployed: 1 });
    expect((await progressOf(progress.batches[0].workflowId))[sddc]).toMatchObject({ phase: 'done', status: 'deployed' });
  });

  it('drives everything from the vmhub CLI, with one JSON document per command', async () => {
    const published = JSON.parse(
      (await vmhub('publish', 'ops.iso', '--image', 'ops-cli', '--version', '2.0.0', '--json')).stdout,
    ) as PublishResult;
    expect(published).toMatchObject({
      workflowId: 'publish:ops-cli:2.0.0',
      image: 'ops-cli',
      version: '2.0.0',
      format: 'iso',
      deploy: null,
    });

    const deployed = JSON.parse((await vmhub('deploy', 'ops-cli@latest', '--to', sddc, '--json')).stdout) as DeployResult;
    expect(deployed).toMatchObject({ workflowId: expect.stringMatching(/^deploy:ops-cli:2\.0\.0:/), incomplete: false });
    expect(deployed.results[0]).toMatchObject({ sddc, status: 'deployed' });

    const shown = JSON.parse((await vmhub('show', 'ops-cli@2.0.0', '--json')).stdout);
    expect(shown).toMatchObject({
      status: 'available',
      sha256: published.sha256,
      deployments: [expect.objectContaining({ sddc, status: 'deployed' })],
    });

    const status = JSON.parse((await vmhub('status', 'publish:ops-cli:2.0.0', '--json')).stdout);
    expect(status).toMatchObject({ type: 'PublishImage', status: 'completed', progress: { phase: 'done' }, failure: null });

    const sddcs = JSON.parse((await vmhub('sddc', 'list', '--json')).stdout) as Array<{ name: string }>;
    expect(sddcs.map((s) => s.name)).toContain(sddc);

    const images = JSON.parse((await vmhub('images', '--image', 'ops-cli', '--json')).stdout) as Array<{ version: string }>;
    expect(images.map((i) => i.version)).toEqual(['2.0.0']);
  });

  it('fails with one line on stderr and a non-zero exit', async () => {
    const err = await vmhub('publish', '../../etc/passwd', '--image', 'ops-bad', '--version', '1.0.0').then(
      () => undefined,
      (e: { code: number; stdout: string; stderr: string }) => e,
    );
    expect(err?.code).toBe(1);
    expect(err?.stdout).toBe('');
    expect(err?.stderr.trim().split('\n')).toEqual([
      expect.stringMatching(
        // Resolved against the current directory, wherever the checkout is.
        /^vmhub: InvalidSource: source (\/[^ /]+)*\/etc\/passwd is outside the repository roots \(.*\); .*VMHUB_REPOSITORY_ROOTS/,
      ),
    ]);
  });

  it('shows the publish in the Temporal Web UI, found by a search-attribute query', async () => {
    const ui = `http://127.0.0.1:${process.env.TEMPORAL_UI_PORT}`;
    const browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    try {
      const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
      const query = encodeURIComponent('VmImage="ops-cli"');
      await page.goto(`${ui}/namespaces/default/workflows?query=${query}`);
      const link = page.getByText('publish:ops-cli:2.0.0', { exact: true }).first();
      await link.waitFor({ timeout: 30_000 });
      await link.click();
      // The activities are labelled by their summaries on the timeline ...
      await page.getByText('stage blocks 0–0').first().waitFor({ timeout: 30_000 });
      // ... and the workflow's own summary and details are under User Metadata.
      await page.getByText('User Metadata', { exact: true }).first().click();
      // The UI renders summaries (markdown) inside sandboxed frames.
      const shown = async (text: string | RegExp) => {
        for (const frame of page.frames()) {
          const html = await frame.content().catch(() => '');
          if (typeof text === 'string' ? html.includes(text) : text.test(html)) return true;
        }
        return false;
      };
      await until('the summary in the Web UI', () => shown('Publish ops-cli 2.0.0 from ops.iso'), 30_000);
      await until(
        'the current details in the Web UI',
        () => shown(/Publish ops-cli 2\.0\.0 \(\d+ KiB ISO\) from repository/),
        30_000,
      );
      fs.mkdirSync(path.join(ROOT, 'test-output'), { recursive: true });
      await page.screenshot({ path: path.join(ROOT, 'test-output', 'web-ui-publish.png'), fullPage: true });
      expect(fs.statSync(path.join(ROOT, 'test-output', 'web-ui-publish.png')).size).toBeGreaterThan(10_000);
    } finally {
      await browser.close();
    }
  });
});
