import fs from 'node:fs';
import path from 'node:path';
import { VmhubError } from '../shared/errors';
import type { SourcePolicy } from './policy';

/**
 * Where an image is read from: a file inside one of the repository roots, or an http(s) URL of a
 * server that answers Range requests. Both give random access by byte range. A file reference carries
 * the identity (`dev:ino`) of the file that was checked against the roots, so that opening it can
 * prove it is still that file.
 */
export type SourceRef = { kind: 'file'; path: string; inode: string } | { kind: 'http'; url: string };

export interface ImageSource {
  readonly ref: SourceRef;
  readonly sizeBytes: number;
  /**
   * The version of the content this source is bound to: an opaque validator (an http ETag or
   * Last-Modified, a file's inode, size and modification time), undefined when the server gives none.
   */
  readonly version: string | undefined;
  /** Reads [start, end) into `into` (exactly end - start bytes long) when given, else into a fresh buffer. */
  read(start: number, end: number, signal?: AbortSignal, into?: Buffer): Promise<Buffer>;
  close(): Promise<void>;
}

export interface OpenOptions {
  policy?: SourcePolicy;
  signal?: AbortSignal;
}

/** A source that does not exist, as opposed to one that may not be read. */
export class MissingSource extends VmhubError {
  constructor(message: string) {
    super('InvalidSource', message);
  }
}

function inside(root: string, candidate: string): boolean {
  const rel = path.relative(root, candidate);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/** The roots as the file system resolves them; a root that does not exist contains nothing. */
function realRoots(roots: string[]): string[] {
  return roots.flatMap((r) => {
    try {
      return [fs.realpathSync(r)];
    } catch {
      return [];
    }
  });
}

export function inodeOf(stat: fs.BigIntStats): string {
  return `${stat.dev}:${stat.ino}`;
}

/**
 * Resolves a publish `source` against the repository roots, or checks the shape of an http(s) URL;
 * anything else is `InvalidSource`. Which hosts a URL may reach is checked when it is opened.
 */
export function resolveSource(source: string, roots: string[]): SourceRef {
  if (typeof source !== 'string' || source.trim() === '') throw new VmhubError('InvalidSource', 'source is empty');
  if (source.includes('\0')) throw new VmhubError('InvalidSource', 'source contains a NUL character');
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(source)) return { kind: 'http', url: checkSourceUrl(source) };
  if (roots.length === 0) throw new VmhubError('InvalidSource', 'no repository root is configured (VMHUB_REPOSITORY_ROOTS)');
  const candidate = path.resolve(roots[0], source);
  if (!roots.some((r) => inside(path.resolve(r), candidate)))
    throw new VmhubError('InvalidSource', `source ${source} is outside the repository roots`);
  let real: string;
  try {
    real = fs.realpathSync(candidate);
  } catch {
    throw new MissingSource(`source ${source} does not exist in the repository`);
  }
  // A link is followed only to a file inside some root, the one it is in or another: every root may be
  // read anyway, and nothing outside them can be reached through one.
  if (!realRoots(roots).some((r) => inside(r, real))) {
    throw new VmhubError(
      'InvalidSource',
      // Neither where it leads is named nor its folder advised as a root: a repository's links are not trusted.
      `source ${source} links outside every repository root; copy the file itself under a root (a link may lead only to a file inside one)`,
    );
  }
  const stat = fs.statSync(real, { bigint: true });
  if (!stat.isFile()) throw new VmhubError('InvalidSource', `source ${source} is not a regular file`);
  return { kind: 'file', path: real, inode: inodeOf(stat) };
}

/** A source URL: http(s), with no credentials, query string or fragment (signed access comes from a named source credential). */
export function checkSourceUrl(source: string): string {
  let url: URL;
  try {
    url = new URL(source);
  } catch {
    throw new VmhubError('InvalidSource', 'source is not a valid URL');
  }
  const where = `${url.protocol}//${url.host}${url.pathname}`;
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new VmhubError(
      'InvalidSource',
      `source scheme ${url.protocol} is not supported; use a repository path or an http(s) URL`,
    );
  }
  if (url.username || url.password || /^[a-z]+:\/\/[^/]*@/i.test(source)) {
    throw new VmhubError('InvalidSource', `source URL ${where} may not carry credentials`);
  }
  if (source.includes('?') || source.includes('#')) {
    throw new VmhubError(
      'InvalidSource',
      `source URL ${where} may not carry a query string or fragment; signed access comes from a source credential in the topology`,
    );
  }
  return url.href;
}
