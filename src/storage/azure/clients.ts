import { BlobServiceClient, StorageSharedKeyCredential, type StoragePipelineOptions } from '@azure/storage-blob';
import { VmhubError } from '../../shared/errors';
import { credentialOf, type StorageLocation } from '../../topology/topology';

/** Azurite's published development key: not a secret, and only ever used for a loopback endpoint. */
const AZURITE_DEV_ACCOUNT = 'devstoreaccount1';
const AZURITE_DEV_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

const PIPELINE: StoragePipelineOptions = {
  // Temporal owns the long retries; the SDK's own stay short so an outage surfaces as a failed attempt.
  retryOptions: { maxTries: 3, retryDelayInMs: 200, maxRetryDelayInMs: 2000, tryTimeoutInMs: 120_000 },
};

function isLoopback(url: URL): boolean {
  return url.hostname === '127.0.0.1' || url.hostname === 'localhost' || url.hostname === '[::1]';
}

export function blobServiceClient(location: StorageLocation, env: NodeJS.ProcessEnv = process.env): BlobServiceClient {
  const connectionString = credentialOf(env, location.connectionStringEnv);
  if (connectionString) return BlobServiceClient.fromConnectionString(connectionString, PIPELINE);
  const sas = credentialOf(env, location.sasTokenEnv)?.replace(/^\?/, '');
  if (sas) return new BlobServiceClient(`${location.endpoint}?${sas}`, undefined, PIPELINE);
  const url = new URL(location.endpoint);
  const accountName = location.accountName ?? url.hostname.split('.')[0];
  let key = credentialOf(env, location.accountKeyEnv);
  if (!key && isLoopback(url) && accountName === AZURITE_DEV_ACCOUNT) key = AZURITE_DEV_KEY;
  // A missing credential is configuration: no retry can supply it, so it is not retried.
  if (!key) {
    const name = location.accountKeyEnv ?? location.connectionStringEnv ?? location.sasTokenEnv;
    throw new VmhubError(
      'InvalidTopology',
      `no credentials for storage ${location.id}: set ${name ? `${name} or ${name}_FILE` : 'a credential variable'}`,
    );
  }
  return new BlobServiceClient(location.endpoint, new StorageSharedKeyCredential(accountName, key), PIPELINE);
}
