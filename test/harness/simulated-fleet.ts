import { ApplicationFailure } from '@temporalio/common';
import type { DownloadInput } from '../../src/activities/agent';
import type { Catalog } from '../../src/catalog/catalog';

/**
 * A fleet of registered SDDCs whose agents only account: the real DeployToSDDCs, planning and recording
 * activities run against the real catalog, while every SDDC's download is a bookkeeping step on one
 * shared agent task queue, so a deploy to a thousand SDDCs runs on this machine in a minute or two.
 */
export const FLEET_IMAGE = { image: 'fleet', version: '1.0.0', sizeBytes: 4 * 1024 ** 3, sha256: 'c'.repeat(64) };

/** Registers `count` SDDCs across the data centers, all served by `agentTaskQueue`, and an available version to deploy. */
export async function registerFleet(
  catalog: Catalog,
  agentTaskQueue: string,
  count: number,
  dataCenters: string[],
): Promise<string[]> {
  const names = Array.from({ length: count }, (_, i) => `fleet-${String(i).padStart(4, '0')}`);
  await catalog.sddcs.collection.insertMany(
    names.map((name, i) => ({
      name,
      dataCenter: dataCenters[i % dataCenters.length],
      taskQueue: agentTaskQueue,
      capacity: { cpus: 64, memoryMiB: 524_288, diskGiB: 4096 },
      createdAt: new Date(),
    })),
  );
  const { image, version, sizeBytes, sha256 } = FLEET_IMAGE;
  const owner = { workflowId: `publish:${image}:${version}`, runId: 'simulated' };
  const location = { storage: 'east-primary', container: 'vm-images', blob: `${image}/${version}/${image}-${version}.iso` };
  await catalog.versions.claim(
    { image, version, format: 'iso', sizeBytes, location, blockSize: 8 * 1024 ** 2, blockCount: sizeBytes / 8 / 1024 ** 2 },
    owner,
  );
  const metadata = {
    kind: 'iso' as const,
    volumeId: 'FLEET',
    volumeSizeBytes: sizeBytes,
    bootable: false,
    joliet: false,
    udf: false,
  };
  await catalog.versions.markAvailable(image, version, owner, sha256, metadata);
  return names;
}

/** The agent side: every SDDC downloads at once, except those `fails` names, whose agents refuse the image. */
export function accountingAgent(fails: (sddc: string) => boolean) {
  return {
    downloadImage: async (input: DownloadInput) => {
      if (fails(input.sddc))
        throw ApplicationFailure.nonRetryable(`${input.sddc} has no room left on its datastore`, 'InsufficientSpace');
      return {
        status: 'deployed' as const,
        source: input.sources[0]?.location ?? null,
        path: `/datastore/${input.image}/${input.version}/${input.image}-${input.version}.iso`,
        bytes: input.sizeBytes,
        bytesFetched: input.sizeBytes,
        bytesResumed: 0,
        sourceFailures: [],
      };
    },
  };
}
