import { loadConfig } from '../../src/config';
import { VmhubError } from '../../src/shared/errors';
import { TopologyBlockStores } from '../../src/storage/backends';
import { loadTopology } from '../../src/topology/topology';

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
});
