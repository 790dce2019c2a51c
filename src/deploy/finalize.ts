import fs from 'node:fs';
import path from 'node:path';
import { O_TRUNC, syncDir, writeNoFollow } from '../datastore/files';
import type { DeploymentPaths } from '../datastore/layout';
import { blockIndexPath, type BlockIndex } from './block-index';

/**
 * Gives the verified partial file its final name. The digest is durable before the final name appears,
 * and the rename is durable before the checkpoint goes.
 */
export async function finalizeDownload(paths: DeploymentPaths, sha256: string, index: BlockIndex | undefined): Promise<void> {
  await writeNoFollow(paths.digest, `${sha256}  ${path.basename(paths.final)}\n`, O_TRUNC, true);
  await fs.promises.rename(paths.partial, paths.final);
  await syncDir(paths.dir);
  await fs.promises.rm(paths.state, { force: true });
  // The index makes this version a base for the next one; without it, it is only not one.
  if (index) await writeNoFollow(blockIndexPath(paths.final), JSON.stringify(index), O_TRUNC, false);
}
