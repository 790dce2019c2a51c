import { randomUUID } from 'node:crypto';
import { loadConfig } from '../src/config';
import { TopologyBlockStores } from '../src/storage/backends';
import { loadTopology } from '../src/topology/topology';
import { describeBlockStoreContract } from './harness/block-store-contract';

/** The block store contract on Azurite (started by the jest global setup), in a container of its own. */
describeBlockStoreContract('azure', () => {
  const topology = loadTopology(loadConfig().topologyPath);
  const location = { ...topology.storage[0], container: `contract-${randomUUID().slice(0, 8)}` };
  return new TopologyBlockStores({ ...topology, storage: [location] }).store(location.id);
});
