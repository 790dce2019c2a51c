import fs from 'node:fs';
import net from 'node:net';
import { Catalog } from '../src/catalog/catalog';
import { loadConfig } from '../src/config';
import { spawnWorker, until } from './harness/worker-process';

/** A TCP proxy to Temporal that can be cut, as an outage is for a worker. */
async function startCuttableProxy(target: string): Promise<{ address: string; cut(): Promise<void> }> {
  const [host, port] = [target.slice(0, target.lastIndexOf(':')), Number(target.slice(target.lastIndexOf(':') + 1))];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(port, host);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => undefined);
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    address: `127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    cut: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

const lines = (file: string) =>
  fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '');

describe('worker logs', () => {
  // An agent serves only a registered SDDC.
  let catalog: Catalog;
  beforeAll(async () => {
    catalog = await Catalog.connect(loadConfig().mongodbUri);
    await catalog.sddcs.add({
      name: 'logs-east-9',
      dataCenter: 'dc-east',
      taskQueue: 'sddc-logs-east-9',
      capacity: { cpus: 8, memoryMiB: 16384, diskGiB: 100 },
    });
  });
  afterAll(async () => {
    await catalog.sddcs.remove('logs-east-9');
    await catalog.close();
  });

  it('are JSON lines without ANSI escapes, the SDK core lines during an outage included', async () => {
    const proxy = await startCuttableProxy(loadConfig().temporal.address);
    const worker = spawnWorker(['agent', 'logs-east-9'], { TEMPORAL_ADDRESS: proxy.address, VMHUB_LOG_LEVEL: 'INFO' });
    try {
      await until('the worker to run', () => lines(worker.logFile).some((l) => l.includes('Worker state changed')), 120_000);
      await proxy.cut();
      await until(
        'a line from the SDK core',
        () => lines(worker.logFile).some((l) => l.includes('"sdkComponent":"core"')),
        120_000,
      );
    } finally {
      await worker.stop();
      // Cut again when the test failed before the cut: a listening proxy would keep jest from exiting.
      await proxy.cut();
    }
    const text = fs.readFileSync(worker.logFile, 'utf8');
    expect(text).not.toContain('\x1b');
    const parsed = lines(worker.logFile).map((l) => JSON.parse(l) as { level: string; msg: string; time: string });
    for (const entry of parsed) {
      expect(typeof entry.msg).toBe('string');
      expect(['trace', 'debug', 'info', 'warn', 'error']).toContain(entry.level);
      expect(Number.isNaN(Date.parse(entry.time))).toBe(false);
    }
  });

  it('says why a worker could not start in a JSON line too', async () => {
    const worker = spawnWorker(['agent', 'logs-east-9'], { TEMPORAL_ADDRESS: '127.0.0.1:1' });
    await new Promise<void>((resolve) => worker.child.once('exit', () => resolve()));
    expect(worker.child.exitCode).toBe(1);
    const parsed = lines(worker.logFile).map((l) => JSON.parse(l) as { level: string; msg: string; error?: { message: string } });
    expect(parsed.at(-1)).toMatchObject({ level: 'error', msg: 'vmhub worker stopped' });
    expect(parsed.at(-1)?.error?.message).toMatch(/onnect/);
  });
});
