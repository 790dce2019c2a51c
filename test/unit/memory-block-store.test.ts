import { MemoryBlockStore } from '../../src/storage/memory-block-store';
import { describeBlockStoreContract } from '../harness/block-store-contract';

describeBlockStoreContract('memory', () => new MemoryBlockStore());
