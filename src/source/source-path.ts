import path from 'node:path';
import { VmhubError } from '../shared/errors';

/**
 * A source as an operator types it, turned into the `source` a PublishImage input carries. The workflow
 * resolves a relative source against the first repository root, so:
 * - an http(s) URL (anything with a scheme) is left as it is, for the workflow's own checks;
 * - a path, absolute or relative to `cwd`, that lies inside a root becomes relative to the first root
 *   when it is under that one, and stays absolute under any other root;
 * - a relative path that is not inside a root from `cwd` is taken as already relative to the first root
 *   (`demo/app.ova`), as long as it stays inside it;
 * - anything else fails with `InvalidSource`, naming the roots and VMHUB_REPOSITORY_ROOTS.
 * Only the text is judged here: whether the file exists, and where its links lead, the publish checks.
 */
export function resolveSourcePath(input: string, repositoryRoots: string[], cwd: string): string {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(input)) return input;
  if (input.trim() === '')
    throw new VmhubError('InvalidSource', 'the source is empty: give a path in the repository or an http(s) URL');
  const roots = repositoryRoots.map((r) => path.resolve(r));
  if (roots.length === 0) {
    throw new VmhubError(
      'InvalidSource',
      'no repository root is configured: set VMHUB_REPOSITORY_ROOTS to the folders images are published from (colon-separated)',
    );
  }
  const fromCwd = path.resolve(cwd, input);
  const underRoot = inRoots(roots, fromCwd);
  if (underRoot !== undefined) return underRoot;
  if (!path.isAbsolute(input)) {
    const fromFirstRoot = path.resolve(roots[0], input);
    if (isInside(roots[0], fromFirstRoot)) return path.relative(roots[0], fromFirstRoot);
  }
  throw new VmhubError(
    'InvalidSource',
    `source ${fromCwd} is outside the repository roots (${roots.join(', ')}); copy or move the file under one of them ` +
      `(a link there to a file outside them is refused), or add ${path.dirname(fromCwd)} to VMHUB_REPOSITORY_ROOTS ` +
      '(colon-separated) for both the CLI and the worker',
  );
}

/** The source for a path inside one of the roots, or undefined. */
function inRoots(roots: string[], file: string): string | undefined {
  if (isInside(roots[0], file)) return path.relative(roots[0], file);
  return roots.some((r) => isInside(r, file)) ? file : undefined;
}

/** Strictly below the root: the root itself is a folder, never an image. */
function isInside(root: string, candidate: string): boolean {
  const rel = path.relative(root, candidate);
  return rel !== '' && rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel);
}
