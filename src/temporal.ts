import fs from 'node:fs';
import { Client, Connection, type ConnectionOptions } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import type { TemporalConfig } from './config';

/** Connection options shared by the client and the workers: address, TLS/mTLS and API key. */
function connectionOptions(config: TemporalConfig): ConnectionOptions & { apiKey?: string } {
  const { tls } = config;
  return {
    address: config.address,
    apiKey: config.apiKey,
    tls: tls
      ? {
          serverNameOverride: tls.serverName,
          serverRootCACertificate: tls.serverRootCaCertPath ? fs.readFileSync(tls.serverRootCaCertPath) : undefined,
          clientCertPair:
            tls.clientCertPath && tls.clientKeyPath
              ? { crt: fs.readFileSync(tls.clientCertPath), key: fs.readFileSync(tls.clientKeyPath) }
              : undefined,
        }
      : undefined,
  };
}

export async function connectClient(config: TemporalConfig): Promise<Client> {
  const connection = await Connection.connect(connectionOptions(config));
  return new Client({ connection, namespace: config.namespace });
}

export function connectWorker(config: TemporalConfig): Promise<NativeConnection> {
  return NativeConnection.connect(connectionOptions(config));
}
