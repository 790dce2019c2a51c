import type { Catalog } from '../catalog/catalog';
import { VmhubError } from '../shared/errors';
import { validateImageName, validateVersion } from '../shared/names';
import type { Topology } from '../topology/topology';
import type { VersionRef } from '../shared/image-version';

export interface VerifyPage {
  versions: VersionRef[];
  replicas: string[];
  /** Where the next page starts; absent on the last page. */
  next?: string;
}

/** The `<image>@<version>` key verify pages are ordered and resumed by. */
const pageKey = (r: VersionRef) => `${r.image}@${r.version}`;

/** One page of the available versions to verify (one version, one image's, or all), in `<image>@<version>` order. */
export async function versionsToVerify(
  deps: { catalog: Pick<Catalog, 'versions'>; topology: Topology },
  input: { image?: string; version?: string; after?: string; limit: number },
): Promise<VerifyPage> {
  if (input.image !== undefined) validateImageName(input.image);
  if (input.version !== undefined) validateVersion(input.version);
  const all = (
    await deps.catalog.versions.list(input.image, { status: 'available', ...(input.version ? { version: input.version } : {}) })
  )
    .map(({ image, version }) => ({ image, version }))
    .sort((a, b) => (pageKey(a) < pageKey(b) ? -1 : pageKey(a) > pageKey(b) ? 1 : 0));
  if (input.image && input.version && all.length === 0) {
    throw new VmhubError('UnknownImage', `${input.image}@${input.version} is not an available version`);
  }
  const rest = input.after === undefined ? all : all.filter((v) => pageKey(v) > input.after!);
  const versions = rest.slice(0, input.limit);
  return {
    versions,
    replicas: deps.topology.storage.filter((s) => s.role === 'replica').map((s) => s.id),
    next: rest.length > versions.length ? pageKey(versions[versions.length - 1]) : undefined,
  };
}
