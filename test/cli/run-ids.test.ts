import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { until } from '../harness/worker-process';
import { isoImage, ovaFromDescriptor } from '../images/build';
import { fixture } from '../images/fixtures';
import { repositoryRoot, startWorld, vmhubCli, type Ran, type TestWorld } from '../helpers';

/** An OVA whose descriptor declares a semantic version, so a publish without --version learns it from the image. */
const DESCRIPTOR = fixture('govmomi__ttylinux-pc_i486-16.1.ovf').replace(
  '</VirtualSystem>',
  '<ProductSection><Info/><Product>Box</Product><Version>2.1.0</Version></ProductSection></VirtualSystem>',
);

/** Workflow IDs an operator can rely on, and runs no worker polls, through the vmhub CLI on the real services. */
describe('run IDs and unpolled runs, from the vmhub CLI', () => {
  let world: TestWorld;
  let vmhub: (...args: string[]) => Promise<Ran>;
  const id = randomUUID().slice(0, 6);
  const image = `ids-${id}`;
  const iso = `ids-${id}.iso`;
  const other = `ids-${id}-other.iso`;

  const runIdOf = async (workflowId: string) => (await world.client.workflow.getHandle(workflowId).describe()).runId;

  beforeAll(async () => {
    world = await startWorld();
    vmhub = vmhubCli(world);
    isoImage(path.join(repositoryRoot(), iso), { volumeId: 'IDS' });
    isoImage(path.join(repositoryRoot(), other), { volumeId: 'OTHER' });
    const published = await vmhub('publish', iso, '--image', image, '--version', '1.0.0', '--json');
    expect(published.code).toBe(0);
  });

  afterAll(async () => {
    await world.close();
  });

  it('a conflicting publish leaves publish:<image>:1.0.0 to the run that published it: status completed, wait exit 0', async () => {
    const publishId = `publish:${image}:1.0.0`;
    const publisher = await runIdOf(publishId);
    const { sha256 } = JSON.parse((await vmhub('show', `${image}@1.0.0`, '--json')).stdout) as { sha256: string };

    // Other bytes whose digest is not given: compared by a run of its own, which fails.
    const unknown = await vmhub('publish', other, '--image', image, '--version', '1.0.0');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(
      new RegExp(`^vmhub: VersionConflict: ${image}@1\\.0\\.0 is already published with SHA-256 ${sha256}`),
    );
    // Other bytes named by --sha256: refused from the catalog, no run.
    const pinned = await vmhub('publish', other, '--image', image, '--version', '1.0.0', '--sha256', 'f'.repeat(64));
    expect(pinned.code).toBe(1);
    expect(pinned.stderr).toBe(
      `vmhub: VersionConflict: ${image}@1.0.0 is already published by ${publishId} with SHA-256 ${sha256}, not ${'f'.repeat(64)}; publish other bytes under a new version\n`,
    );
    // The same bytes named by --sha256: answered from the catalog, no run.
    const same = await vmhub('publish', iso, '--image', image, '--version', '1.0.0', '--sha256', sha256.toUpperCase());
    expect(same.code).toBe(0);
    const lines = same.stdout.split('\n');
    expect(lines[0]).toMatch(
      new RegExp(`^already published ${image}@1\\.0\\.0 with the SHA-256 given \\(the source was not read\\): unchanged \\(`),
    );
    expect(lines).toContain(`workflow  ${publishId}`);

    expect(await runIdOf(publishId)).toBe(publisher);
    const status = await vmhub('status', publishId, '--json');
    expect(status.code).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({
      workflowId: publishId,
      status: 'completed',
      resolvedFrom: null,
      failure: null,
    });
    const wait = await vmhub('wait', publishId);
    expect(wait.code).toBe(0);
    expect(wait.stdout).toMatch(new RegExp(`^published ${image}@1\\.0\\.0 `));

    // Only the comparing run started beside the first: the answers from the catalog started none.
    const runs = async () => {
      const ids: string[] = [];
      for await (const w of world.client.workflow.list({ query: `WorkflowId STARTS_WITH 'publish:${image}:'` }))
        ids.push(w.workflowId);
      return ids.sort();
    };
    await until('the comparing run listed', async () => (await runs()).length > 1);
    expect(await runs()).toEqual([publishId, expect.stringMatching(new RegExp(`^${publishId}:republish-`))]);
  });

  it('a second retire starts no run: the retire ID keeps the run that retired the version', async () => {
    const retireId = `retire:${image}:1.0.0`;
    const first = await vmhub('retire', `${image}@1.0.0`, '--yes');
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(new RegExp(`^retired ${image}@1\\.0\\.0  \\(workflow ${retireId}\\)`));
    const retirer = await runIdOf(retireId);

    const again = await vmhub('retire', `${image}@1.0.0`, '--yes');
    expect(again.code).toBe(0);
    expect(again.stdout).toBe(`${image}@1.0.0 was retired already by ${retireId}; nothing to do\n`);
    expect(await runIdOf(retireId)).toBe(retirer);
    const status = JSON.parse((await vmhub('status', retireId, '--json')).stdout);
    expect(status).toMatchObject({
      workflowId: retireId,
      type: 'RetireImage',
      status: 'completed',
      result: { status: 'retired' },
    });
  });

  it('runs lists every kind of run: a retire and a retention run among them', async () => {
    const retention = `retention:${id}`;
    await world.client.workflow.execute('ApplyRetention', {
      args: [{ image }],
      taskQueue: world.config.taskQueue,
      workflowId: retention,
    });
    type Listed = { runs: Array<{ workflowId: string; type: string; status: string }> };
    let listed: Listed = { runs: [] };
    // Visibility catches up with a run's close a moment after it.
    await until('the retention run listed', async () => {
      listed = JSON.parse((await vmhub('runs', '--limit', '1000', '--json')).stdout) as Listed;
      return listed.runs.some((r) => r.workflowId === retention && r.status === 'completed');
    });
    expect(listed.runs).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ workflowId: `retire:${image}:1.0.0`, type: 'RetireImage', status: 'completed' }),
        expect.objectContaining({ workflowId: retention, type: 'ApplyRetention', status: 'completed' }),
      ]),
    );
    const text = (await vmhub('runs', '--limit', '1000')).stdout.split('\n');
    expect(text[0]).toMatch(/^STARTED +TYPE +STATUS +IMAGE +WORKFLOW ID$/);
    expect(text.find((l) => l.endsWith(` retire:${image}:1.0.0`))).toMatch(/ retire +completed +/);
    expect(text.find((l) => l.endsWith(` ${retention}`))).toMatch(/ retention +completed +- +/);
  });

  it('status publish:<image>:<version> finds the run that published the version without --version', async () => {
    const box = `ids-box-${id}`;
    const ova = `ids-box-${id}.ova`;
    ovaFromDescriptor(path.join(repositoryRoot(), ova), DESCRIPTOR);
    const published = await vmhub('publish', ova, '--image', box, '--json');
    expect(published.code).toBe(0);
    const { workflowId } = JSON.parse(published.stdout) as { workflowId: string };
    expect(workflowId).toMatch(new RegExp(`^publish:${box}:from-image-`));

    const asked = `publish:${box}:2.1.0`;
    const status = await vmhub('status', asked, '--json');
    expect(status.code).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({
      workflowId,
      status: 'completed',
      version: '2.1.0',
      resolvedFrom: { workflowId: asked, reason: `${workflowId} made ${box}@2.1.0's current state` },
    });
    const text = (await vmhub('status', asked)).stdout.split('\n');
    expect(text.slice(0, 2)).toEqual([
      `${asked}: ${workflowId} made ${box}@2.1.0's current state`,
      `PublishImage ${workflowId}: completed`,
    ]);

    const wait = await vmhub('wait', asked);
    expect(wait.code).toBe(0);
    expect(wait.stderr).toContain(`${asked}: ${workflowId} made ${box}@2.1.0's current state`);
    expect(wait.stdout).toMatch(
      new RegExp(`^published ${box}@2\\.1\\.0 .*\\nsha256 .*\\nblob .*\\nworkflow  ${workflowId}$`, 'm'),
    );
  });

  it('a run on a queue no worker polls: status and runs name it, cancel answers at once with exit 2 and the way out', async () => {
    const lost = `ids-lost-${id}`;
    const queue = `unpolled-${id}`;
    const workflowId = `publish:${lost}:1.0.0`;
    await world.client.workflow.start('PublishImage', {
      args: [{ source: iso, image: lost, version: '1.0.0' }],
      taskQueue: queue,
      workflowId,
    });

    const status = await vmhub('status', workflowId);
    expect(status.code).toBe(0);
    expect(status.stdout.split('\n')[0]).toBe(`PublishImage ${workflowId}: running — no worker polls task queue ${queue}`);
    expect(JSON.parse((await vmhub('status', workflowId, '--json')).stdout)).toMatchObject({
      status: 'running',
      taskQueue: queue,
      workerPolling: false,
    });

    // It never ran, so it has no search attributes: runs --image finds it by its ID.
    let runs: Ran = { code: -1, stdout: '', stderr: '' };
    await until('the unpolled run listed', async () => {
      runs = await vmhub('runs', '--image', lost);
      return runs.stdout.includes(workflowId);
    });
    const lines = runs.stdout.split('\n');
    expect(lines.find((l) => l.endsWith(workflowId))).toMatch(/ publish +running \(no worker\) +- +/);
    expect(lines).toContain(
      `no worker polls task queue ${queue}: its runs wait; start one (VMHUB_TASK_QUEUE=${queue} npm run worker) or stop them with \`vmhub cancel --terminate <workflow-id>\``,
    );

    const cancel = await vmhub('cancel', workflowId);
    expect(cancel.code).toBe(2);
    expect(cancel.stdout.split('\n')).toEqual([
      `${workflowId}: running — no worker polls task queue ${queue}`,
      `  cancel requested, but no worker polls task queue ${queue}, so nothing could stop the run or clean up`,
      `  start a worker on it (VMHUB_TASK_QUEUE=${queue} npm run worker) and the run stops and cleans up,`,
      `  or stop it at once without cleanup: vmhub cancel --terminate ${workflowId}`,
      '',
    ]);
    const terminated = await vmhub('cancel', '--terminate', workflowId, '--json');
    expect(terminated.code).toBe(0);
    expect(JSON.parse(terminated.stdout)).toMatchObject({ workflowId, status: 'terminated', stopped: true });
    expect((await world.client.workflow.getHandle(workflowId).describe()).status.name).toBe('TERMINATED');
  });
});
