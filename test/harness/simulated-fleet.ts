import { ApplicationFailure } from '@temporalio/common';
import type { DownloadInput } from '../../src/activities/agent';
import type { Catalog } from '../../src/catalog/catalog';
import type { SddcCopy } from '../../src/shared/image-version';

/**
 * A fleet of registered SDDCs whose agents only account: the real DeployToSDDCs, planning and recording
 * activities run against the real catalog, while every SDDC's download is a bookkeeping step on one
 * shared agent task queue, so a deploy to a thousand SDDCs runs on this machine in a minute or two. A
 * retire's fleet is recorded as holding the version in one bulk write, and its removals only account too.
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

/** Records, as deploys would have, that every named SDDC holds FLEET_IMAGE: one bulk write for the whole fleet. */
export async function recordFleetDeployments(catalog: Catalog, names: string[]): Promise<void> {
  const { image, version } = FLEET_IMAGE;
  const at = new Date();
  const attempt = { status: 'deployed' as const, source: 'east-primary', at };
  await catalog.deployments.collection.insertMany(
    names.map((sddc) => ({
      image,
      version,
      sddc,
      status: 'deployed' as const,
      source: 'east-primary',
      path: fleetCopyPath(sddc),
      updatedAt: at,
      deployedAt: at,
      firstAttemptAt: at,
      origin: attempt,
    })),
  );
}

function fleetCopyPath(sddc: string): string {
  return `/datastore/${sddc}/${FLEET_IMAGE.image}-${FLEET_IMAGE.version}.iso`;
}

/**
 * The agent side of a retire: every SDDC's removal only accounts, in `removed`. `gate`, when given, holds
 * each removal until it resolves.
 */
export function accountingRemover(removed: Set<string>, gate?: () => Promise<void>) {
  return {
    removeDeployedCopy: async (copy: SddcCopy) => {
      await gate?.();
      removed.add(copy.sddc);
      return { removed: [fleetCopyPath(copy.sddc)] };
    },
  };
}
