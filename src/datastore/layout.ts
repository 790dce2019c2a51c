import fs from 'node:fs';
import path from 'node:path';
import type { Config } from '../config';
import { VmhubError } from '../shared/errors';
import { BLOB_EXTENSIONS, type ImageFormat } from '../shared/image-format';
import { formatBytes } from '../shared/units';

/** Where an agent keeps its images: its own configuration says, nothing in a task does. */
export function datastoreRoot(config: Pick<Config, 'datastore' | 'dataDir'>, sddc: string): string {
  return config.datastore ?? path.join(config.dataDir, 'sddc', sddc);
}

/**
 * Creates `<root>/<image>/<version>` one level at a time and refuses a level whose real path is not where
 * it should be (a symlink), so nothing is ever created or written through a link, inside the root or out.
 */
export function deploymentDir(root: string, image: string, version: string): Promise<string> {
  return realDirs(root, [image, version]);
}

/** `<root>/<image>`, made as deploymentDir makes its levels: what an image's channels keep (their locks). */
export function imageDir(root: string, image: string): Promise<string> {
  return realDirs(root, [image]);
}

async function realDirs(root: string, names: string[]): Promise<string> {
  await fs.promises.mkdir(root, { recursive: true });
  let dir = await fs.promises.realpath(root);
  for (const name of names) {
    dir = path.join(dir, name);
    await fs.promises.mkdir(dir).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'EEXIST') throw err;
    });
    const real = await fs.promises.realpath(dir).catch(() => undefined);
    if (real !== dir) {
      throw new VmhubError(
        'InvalidInput',
        `${dir} is a link (to ${real ?? 'nowhere'}); the agent writes only into real directories of its datastore`,
      );
    }
  }
  return dir;
}

export function deploymentPaths(dir: string, image: string, version: string, format: ImageFormat) {
  const file = `${image}-${version}.${BLOB_EXTENSIONS[format]}`;
  return {
    dir,
    final: path.join(dir, file),
    partial: path.join(dir, `.${file}.partial`),
    state: path.join(dir, `.${file}.partial.json`),
    /** The next checkpoint, renamed over `state` once written: a kill never leaves a checkpoint half-written. */
    stateNext: path.join(dir, `.${file}.partial.json.next`),
    lock: path.join(dir, `.${file}.lock`),
    digest: path.join(dir, `${file}.sha256`),
    /** The signed provenance the copy was checked against, kept for the import that checks it again. */
    envelope: path.join(dir, `${file}.dsse.json`),
    /** Written once the copy's own library import is done: only then may a newer version's import remove it. */
    imported: path.join(dir, `.${file}.imported`),
  };
}

export type DeploymentPaths = ReturnType<typeof deploymentPaths>;

/** The paths of a version's files, its directory created (never through a link). */
export async function openDeployment(
  root: string,
  image: { image: string; version: string; format: ImageFormat },
): Promise<DeploymentPaths> {
  const dir = await deploymentDir(root, image.image, image.version);
  return deploymentPaths(dir, image.image, image.version, image.format);
}

/** Refuses a download the filesystem has no room for, rather than failing with a full disk half-way. */
export function checkFreeSpace(stats: { bavail: number; bsize: number }, neededBytes: number, dir: string): void {
  const available = stats.bavail * stats.bsize;
  if (available < neededBytes) {
    throw new VmhubError(
      'InsufficientSpace',
      `${dir} has ${formatBytes(available)} free; the download needs ${formatBytes(neededBytes)} more`,
    );
  }
}

/** Removes what an unfinished download left: the partial file and its checkpoints. */
export async function discardPartial(paths: DeploymentPaths): Promise<void> {
  await Promise.all([paths.partial, paths.state, paths.stateNext].map((file) => fs.promises.rm(file, { force: true })));
}
