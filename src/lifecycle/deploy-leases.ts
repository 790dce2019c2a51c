import type { Catalog } from '../catalog/catalog';
import type { VersionRef } from '../shared/image-version';
import type { TemporalView } from '../temporal/connection';

/**
 * Workflow IDs of the deploys holding a lease on image@version (src/catalog/deploy-leases-repository.ts).
 * The catalog is read rather than Temporal's visibility, which lags: a deploy that has just started is
 * already leased. A lease whose workflow is no longer running (a run terminated or crashed before its
 * release) is dropped rather than blocking for ever; the workflow ID is described rather than the run,
 * so a reset deploy, whose new run continues the same work, still holds its lease. A preview
 * (`dropClosed: false`) only reads.
 */
export async function leasedDeploys(
  deps: { catalog: Pick<Catalog, 'deployLeases'>; temporal: Pick<TemporalView, 'isRunning'> },
  ref: VersionRef,
  { dropClosed = true }: { dropClosed?: boolean } = {},
): Promise<string[]> {
  const live: string[] = [];
  for (const lease of await deps.catalog.deployLeases.of(ref.image, ref.version)) {
    if (await deps.temporal.isRunning(lease.workflowId)) live.push(lease.workflowId);
    else if (dropClosed) await deps.catalog.deployLeases.drop(lease);
  }
  return live;
}
