import { randomUUID } from 'node:crypto';
import { CheckServices } from '../src/workflows/check-services';
import { startWorld, type TestWorld } from './helpers';

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
      const body = await world.deps.storage.container(b.storage).getBlockBlobClient(b.blob).downloadToBuffer();
      expect(JSON.parse(body.toString()).token).toBe(token);
    }
    const doc = await world.deps.catalog.db.collection('health').findOne({ token });
    expect(doc?.token).toBe(token);
  });
});
