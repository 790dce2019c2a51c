import net from 'node:net';

/**
 * A loopback port free now, for a server that binds it itself and cannot be given port 0 (the SDK's
 * metrics exporter, embedded services started by tests and the bench). Another process may take it
 * before the caller binds it; the callers bind at once.
 */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}
