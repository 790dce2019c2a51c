import http from 'node:http';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { publishWorkflowId, type PublishResult } from '../src/shared/publish-input';
import { readProgress, type PublishReading } from '../src/cli/run-progress';
import { startFileServer, type FileServer } from './harness/range-server';
import { until } from './harness/worker-process';
import { repositoryRoot, startWorld, writeIsoFile, type TestWorld } from './helpers';

const MiB = 1024 * 1024;
const BLOCK = 4 * MiB;

/** A proxy in front of a file server that holds every read from `heldFrom` on, until `open()`. */
interface Gate {
  url(name: string): string;
  open(): void;
  close(): Promise<void>;
}

async function startGate(files: FileServer, heldFrom: number): Promise<Gate> {
  const waiting: Array<() => void> = [];
  let opened = false;
  const target = new URL(files.origin);
  const server = http.createServer((req, res) => {
    const forward = () => {
      const upstream = http.request(
        { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
        (up) => {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
        },
      );
      upstream.on('error', () => res.destroy());
      req.pipe(upstream);
    };
    const start = Number(/^bytes=(\d+)-/.exec(req.headers.range ?? '')?.[1] ?? 0);
    if (opened || start < heldFrom) forward();
    else waiting.push(forward);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url: (name) => `${origin}/${encodeURIComponent(name)}`,
    open() {
      opened = true;
      for (const forward of waiting.splice(0)) forward();
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe('readProgress', () => {
  let world: TestWorld;
  let files: FileServer;
  beforeAll(async () => {
    world = await startWorld({ blockSizeBytes: BLOCK, transferConcurrency: 2, rangeFanOut: 2, sourceHosts: ['127.0.0.1'] });
    files = await startFileServer(repositoryRoot());
  });
  afterAll(async () => {
    await files.close();
    await world.close();
  });

  it('shows the bytes a range has staged before the range completes, without adding to history', async () => {
    const size = 96 * MiB;
    writeIsoFile(path.join(repositoryRoot(), 'progress-96.iso'), size, 13);
    // Blocks 0–7 of the first 16-block range can be read; everything after waits, so no range completes.
    const gate = await startGate(files, 8 * BLOCK);
    try {
      const workflowId = publishWorkflowId('progress', '1.0.0');
      const handle = await world.client.workflow.start('PublishImage', {
        args: [{ source: gate.url('progress-96.iso'), image: 'progress', version: '1.0.0' }],
        taskQueue: world.config.taskQueue,
        workflowId,
      });

      // Both ranges' activities have beaten: their lanes take the lowest blocks of either range, so which of
      // them reports the first block staged depends on which started first.
      let seen: PublishReading | undefined;
      await until('a reading with staged bytes from both ranges', async () => {
        const reading = await readProgress(world.client, workflowId);
        const beaten = reading.transfers.filter((t) => t.kind === 'staging' && t.bytesTotal > 0);
        if (reading.kind === 'publish' && reading.bytesStaged > 0 && beaten.length === 2) seen = reading;
        return seen !== undefined;
      });
      const held = seen!;
      expect(held.progress.bytesStaged).toBe(0);
      expect(held.bytesStaged).toBeGreaterThan(0);
      expect(held.bytesStaged).toBeLessThan(size);
      expect(held.bytesStaged % BLOCK).toBe(0);
      expect(held.bytesTotal).toBe(size);
      expect(held.status).toBe('running');
      const staging = held.transfers.filter((t) => t.kind === 'staging');
      expect(staging.length).toBeGreaterThan(0);
      expect(staging.map((t) => t.bytesTotal).sort((a, b) => a - b)).toEqual([8 * BLOCK, 16 * BLOCK]);
      const historyWhileHeld = (await handle.describe()).historyLength;

      // Readings add nothing to the run's history.
      for (let i = 0; i < 5; i++) await readProgress(world.client, workflowId);
      expect((await handle.describe()).historyLength).toBe(historyWhileHeld);

      gate.open();
      const result = (await handle.result()) as PublishResult;
      expect(result.sizeBytes).toBe(size);

      const done = await readProgress(world.client, workflowId);
      expect(done).toMatchObject({
        kind: 'publish',
        status: 'completed',
        bytesStaged: size,
        bytesInspected: size,
        transfers: [],
      });
      const { currentDetails } = await handle.query<{ currentDetails: string }>('__temporal_workflow_metadata');
      expect(currentDetails).toContain('published progress@1.0.0');
    } finally {
      gate.open();
      await gate.close();
    }
  });
});
