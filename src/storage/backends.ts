import { VmhubError } from '../shared/errors';
import type { StorageLocation, Topology } from '../topology/topology';
import { openAzureStore } from './azure/azure-block-store';
import type { BlockStore, BlockStores } from './block-store';

/** How each backend opens the store of one location; a location names its backend, Azure when it names none. */
const BACKENDS = new Map<string, (location: StorageLocation, env: NodeJS.ProcessEnv) => BlockStore>([['azure', openAzureStore]]);

/** One store per storage location of the topology, opened once, through the backend the location names. */
export class TopologyBlockStores implements BlockStores {
  private readonly stores = new Map<string, BlockStore>();

  constructor(
    readonly topology: Topology,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {}

  store(locationId: string): BlockStore {
    let store = this.stores.get(locationId);
    if (!store) {
      const location = this.topology.storage.find((s) => s.id === locationId);
      if (!location) throw new VmhubError('InvalidTopology', `no storage location ${locationId} in the topology`);
      const open = BACKENDS.get(location.backend ?? 'azure');
      if (!open) {
        const known = [...BACKENDS.keys()].join(', ');
        throw new VmhubError('InvalidTopology', `storage ${location.id} names backend ${location.backend}; known: ${known}`);
      }
      store = open(location, this.env);
      this.stores.set(locationId, store);
    }
    return store;
  }

  async ensureContainers(): Promise<void> {
    await Promise.all(this.topology.storage.map((s) => this.store(s.id).createContainer()));
  }
}
