import { randomUUID } from 'node:crypto';
import { Catalog } from '../src/catalog/catalog';
import { loadConfig } from '../src/config';
import { registerDefaultSddcsAt } from '../src/dev-services/embedded';
import { updateSddc } from '../src/sddc/registry';
import { loadTopology } from '../src/topology/topology';
import { checkAgentSddc } from '../src/temporal/worker';
import { CheckServices } from '../src/workflows/check-services';
import { readBlob, startWorld, type TestWorld } from './helpers';

describe('embedded services, end to end', () => {
  let world: TestWorld;
  beforeAll(async () => {
    world = await startWorld();
  });
  afterAll(() => world.close());

  it('runs a workflow whose activity writes to every storage location and the catalog', async () => {
    const token = randomUUID();
    const report = await world.client.workflow.execute(CheckServices, {
      args: [token],
      taskQueue: world.config.taskQueue,
      workflowId: `check-services-${token}`,
    });
    expect(report.blobs.map((b) => b.storage).sort()).toEqual(['east-primary', 'west-replica']);
    for (const b of report.blobs) {
      const body = await readBlob(world.deps.storage.store(b.storage), b.blob);
      expect(JSON.parse(body.toString()).token).toBe(token);
    }
    const doc = await world.deps.catalog.db.collection('health').findOne({ token });
    expect(doc?.token).toBe(token);
  });
});

describe('default SDDCs at services start', () => {
  const config = loadConfig();
  const uri = config.mongodbUri.replace(/\/[^/?]*(\?|$)/, `/vmhub_sddcs_${randomUUID().slice(0, 8)}$1`);
  let catalog: Catalog;
  beforeAll(async () => {
    catalog = await Catalog.connect(uri);
  });
  afterAll(async () => {
    await catalog.db.dropDatabase();
    await catalog.close();
  });

  it("registers the topology's SDDCs once, and leaves an operator's edits alone", async () => {
    const topology = loadTopology(config.topologyPath);
    const names = topology.sddcs.map((s) => s.name);
    const first = await registerDefaultSddcsAt({ ...config, mongodbUri: uri });
    expect(first.map((s) => [s.name, s.created])).toEqual(names.map((n) => [n, true]));
    const east1 = await catalog.sddcs.get('east-1');
    expect(east1).toMatchObject({ dataCenter: 'dc-east', taskQueue: 'sddc-east-1', target: { kind: 'content-library' } });
    expect(east1?.capacity).toEqual(topology.sddcs.find((s) => s.name === 'east-1')!.capacity);

    await updateSddc(catalog.sddcs, 'east-1', { capacity: { cpus: 16 } });
    await catalog.sddcs.remove('west-1');
    const again = await registerDefaultSddcsAt({ ...config, mongodbUri: uri });
    expect(again.map((s) => [s.name, s.created])).toEqual(names.map((n) => [n, n === 'west-1']));
    expect((await catalog.sddcs.get('east-1'))?.capacity.cpus).toBe(16);
    expect((await catalog.sddcs.list()).map((s) => s.name)).toEqual([...names].sort());
  });

  it('an agent refuses an SDDC that is not registered, naming vmhub sddc add', async () => {
    await expect(checkAgentSddc({ ...config, mongodbUri: uri }, 'typo-sddc')).rejects.toMatchObject({
      type: 'UnknownSddc',
      message: expect.stringContaining('vmhub sddc add typo-sddc'),
    });
    await expect(checkAgentSddc({ ...config, mongodbUri: uri }, 'east-2')).resolves.toBeUndefined();
  });

  it('an agent refuses an SDDC registered with another task queue, which no deploy would send to it', async () => {
    await updateSddc(catalog.sddcs, 'east-2', { taskQueue: 'sddc-east-2-moved' });
    await expect(checkAgentSddc({ ...config, mongodbUri: uri }, 'east-2')).rejects.toMatchObject({
      type: 'InvalidInput',
      message: expect.stringContaining('VMHUB_AGENT_TASK_QUEUE=sddc-east-2-moved'),
    });
    await updateSddc(catalog.sddcs, 'east-2', { taskQueue: 'sddc-east-2' });
  });
});
