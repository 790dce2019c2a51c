import type { Activities } from '../../src/activities';
import type { BlockPlan } from '../../src/shared/block-plan';

/**
 * PublishImage's activities replaced by ones that only account bytes, so the real workflow can be run
 * on the real Temporal server for an image far larger than any disk here (a terabyte).
 */
export function accountingActivities(plan: BlockPlan): { activities: Partial<Activities>; bytesAccounted: () => number } {
  let bytes = 0;
  const location = { storage: 'east-primary', container: 'vm-images', blob: 'simulated/1.0.0/simulated-1.0.0.iso' };
  const activities: Partial<Activities> = {
    transferWorkersPolling: async () => 1,
    probeSource: async () => ({ format: 'iso', plan, rangeFanOut: 4, origin: 'repository' }),
    claimVersion: async () => ({ state: 'claimed', location }),
    seedFromEarlier: async () => ({ blocks: 0 }),
    inspectSource: async () => ({
      sha256: 'f'.repeat(64),
      blockListDigest: 'e'.repeat(64),
      metadata: {
        kind: 'iso',
        volumeId: 'SIMULATED',
        volumeSizeBytes: plan.sizeBytes,
        bootable: false,
        joliet: false,
        udf: false,
      },
    }),
    stageBlockRange: async ({ range }) => {
      const staged = Math.min(plan.sizeBytes, (range.first + range.count) * plan.blockSize) - range.first * plan.blockSize;
      bytes += staged;
      return { uploaded: range.count, reused: 0, bytesUploaded: staged };
    },
    commitBlocks: async () => ({ committed: true, etag: '"simulated"' }),
    signProvenance: async () => ({
      keyid: 'c'.repeat(64),
      signedAt: '2025-01-01T00:00:00.000Z',
      envelopeBlob: 'simulated.dsse.json',
    }),
    markAvailable: async (i) => ({
      ...i,
      format: 'iso',
      sizeBytes: plan.sizeBytes,
      blockSize: plan.blockSize,
      blockCount: plan.blockCount,
      location,
    }),
    abandonPublish: async () => ({ owned: true, removed: [] }),
    replicaLocations: async () => ({ replicas: [] }),
    noteOverlap: async () => null,
  };
  return { activities, bytesAccounted: () => bytes };
}
