import type { Catalog } from '../catalog/catalog';
import type { RunRef } from '../catalog/image-records';
import { VmhubError } from '../shared/errors';
import type { VersionRef } from '../shared/image-version';

/**
 * Records the deploy's lease on the version, then reads the version: leased first, so a retire claiming
 * it now finds the lease (and is refused), and one that claimed it before is seen here (ImageRetired).
 */
export async function holdDeployLease(
  catalog: Pick<Catalog, 'deployLeases' | 'versions'>,
  input: VersionRef & { run: RunRef },
): Promise<void> {
  const { image, version, run } = input;
  await catalog.deployLeases.hold({ image, version, workflowId: run.workflowId, runId: run.runId });
  const status = await catalog.versions.status(image, version);
  if (status === 'retiring' || status === 'retired') {
    await catalog.deployLeases.release(run.workflowId);
    throw new VmhubError('ImageRetired', `${image}@${version} is ${status}; deploy another version`);
  }
}
