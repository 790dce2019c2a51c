import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { StorageSharedKeyCredential, type ContainerClient } from '@azure/storage-blob';
import { ApplicationFailure } from '@temporalio/common';
import { loadConfig } from '../../src/config';
import { VmhubError } from '../../src/shared/errors';
import { asFailure } from '../../src/shared/failures';
import { AzureBlockStore } from '../../src/storage/azure/azure-block-store';
import { blobServiceClient } from '../../src/storage/azure/clients';
import { TopologyBlockStores } from '../../src/storage/backends';
import { loadTopology } from '../../src/topology/topology';
import { typedError } from './typed-error';

describe('TopologyBlockStores', () => {
  const topology = loadTopology(loadConfig().topologyPath);
  const [first] = topology.storage;

  it('opens one store per location, through Azure when the location names no backend', () => {
    const stores = new TopologyBlockStores(topology);
    expect(first.backend).toBeUndefined();
    expect(stores.store(first.id).constructor.name).toBe('AzureBlockStore');
    expect(stores.store(first.id)).toBe(stores.store(first.id));
  });

  it('refuses a backend it does not know, and a location the topology does not name', () => {
    const stores = new TopologyBlockStores({ ...topology, storage: [{ ...first, backend: 's3' }] });
    expect(() => stores.store(first.id)).toThrow(VmhubError);
    expect(() => stores.store(first.id)).toThrow(/names backend s3; known: azure/);
    expect(() => stores.store('nowhere')).toThrow(/no storage location nowhere/);
  });

  it('a location the topology does not name is a typed configuration failure, never retried', () => {
    const err = typedError('InvalidTopology', () => new TopologyBlockStores(topology).store('nowhere'));
    expect(err.message).toBe('no storage location nowhere in the topology');
    const failure = asFailure(err);
    expect(failure).toBeInstanceOf(ApplicationFailure);
    expect((failure as ApplicationFailure).nonRetryable).toBe(true);
  });

  it('a location whose credential is not set is a typed configuration failure, never retried', () => {
    const location = {
      ...first,
      endpoint: 'https://vmhubeast.blob.core.windows.net',
      accountName: undefined,
      accountKeyEnv: 'VMHUB_TEST_UNSET_KEY',
      connectionStringEnv: undefined,
      sasTokenEnv: undefined,
    };
    const err = typedError('InvalidTopology', () => blobServiceClient(location, {}));
    expect(err.message).toBe(`no credentials for storage ${first.id}: set VMHUB_TEST_UNSET_KEY or VMHUB_TEST_UNSET_KEY_FILE`);
    expect((asFailure(err) as ApplicationFailure).nonRetryable).toBe(true);
    // Opening the store through the topology fails the same way, before any request is made.
    const stores = new TopologyBlockStores({ ...topology, storage: [location] }, {});
    typedError('InvalidTopology', () => stores.store(first.id));
  });

  it('takes an account key or a SAS token from the file X_FILE names when X is unset (Docker secrets)', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmhub-storage-secret-'));
    fs.writeFileSync(path.join(dir, 'key'), `${Buffer.from('k'.repeat(64)).toString('base64')}\n`);
    fs.writeFileSync(path.join(dir, 'sas'), '?sv=2024&sp=rl&sig=FROMFILE\n');
    const remote = {
      ...first,
      endpoint: 'https://vmhubeast.blob.core.windows.net',
      accountName: undefined,
      connectionStringEnv: undefined,
    };
    const keyed = blobServiceClient(
      { ...remote, accountKeyEnv: 'EAST_KEY', sasTokenEnv: undefined },
      { EAST_KEY: '', EAST_KEY_FILE: path.join(dir, 'key') },
    );
    expect(keyed.credential).toBeInstanceOf(StorageSharedKeyCredential);
    const signed = blobServiceClient(
      { ...remote, accountKeyEnv: undefined, sasTokenEnv: 'EAST_SAS' },
      { EAST_SAS_FILE: path.join(dir, 'sas') },
    );
    expect(signed.url).toBe('https://vmhubeast.blob.core.windows.net/?sv=2024&sp=rl&sig=FROMFILE');
  });
});

describe('AzureBlockStore.copyWithin', () => {
  it('a copy still pending when its caller is cancelled stops waiting for it, polling no more', async () => {
    const cancel = new AbortController();
    const polls: unknown[] = [];
    // A server-side copy that never completes; the caller is cancelled as it starts.
    const poller = {
      isDone: () => false,
      poll: async (options: unknown) => void polls.push(options),
      pollUntilDone: () => new Promise<never>(() => undefined),
      getResult: () => undefined,
    };
    const client = {
      url: 'https://account.blob.core.windows.net/c/app-1.0.0.iso',
      beginCopyFromURL: async (_source: string, options: { abortSignal?: AbortSignal }) => {
        expect(options.abortSignal).toBe(cancel.signal);
        cancel.abort();
        return poller;
      },
    };
    const container = { getBlockBlobClient: () => client } as unknown as ContainerClient;
    const copy = new AzureBlockStore(container).copyWithin('app-2.0.0.iso', 'app-1.0.0.iso', { abortSignal: cancel.signal });
    await expect(copy).rejects.toMatchObject({ name: 'AbortError' });
    expect(polls).toEqual([]);
  });
});
