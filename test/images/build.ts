import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { END_OF_ARCHIVE, entryHeader, padded } from '../../src/images/tar-header';

/** Real archives and ISOs for tests, made by GNU tar and xorriso from files written here. */
export type Member = { name: string; bytes: Buffer };

export function tempDir(prefix = 'vmhub-img-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** Deterministic filler bytes of a given size. */
export function filler(size: number, seed = 1): Buffer {
  const buf = Buffer.alloc(size);
  let x = seed || 1;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    buf[i] = x >>> 16;
  }
  return buf;
}

/** Sets every File's ovf:size in a descriptor to the size of the member written for it. */
export function withFileSizes(descriptor: string, sizes: Record<string, number>): string {
  return descriptor.replace(/<([\w:]*)File\b([^>]*?)\/>/g, (whole, prefix: string, attrs: string) => {
    const href = /(?:ovf:)?href="([^"]+)"/.exec(attrs)?.[1];
    if (!href || sizes[href] === undefined) return whole;
    const next = /\bovf:size="\d+"/.test(attrs)
      ? attrs.replace(/\bovf:size="\d+"/, `ovf:size="${sizes[href]}"`)
      : `${attrs} ovf:size="${sizes[href]}"`;
    return `<${prefix}File${next}/>`;
  });
}

/** File hrefs a descriptor references. */
export function referencedFiles(descriptor: string): string[] {
  return [...descriptor.matchAll(/<(?:[\w]+:)?File\b[^>]*?(?:ovf:)?href="([^"]+)"/g)].map((m) => m[1]);
}

export function manifestLine(algorithm: 'sha1' | 'sha256' | 'sha512', name: string, bytes: Buffer, shape = 0): string {
  const digest = createHash(algorithm).update(bytes).digest('hex');
  const alg = algorithm.toUpperCase();
  return [`${alg}(${name})= ${digest}`, `${alg} (${name})= ${digest}`, `${alg} (${name}) = ${digest}`][shape];
}

/** Writes the members and archives them in the given order with GNU tar in the given header format. */
export function tarArchive(
  out: string,
  members: Member[],
  format: 'ustar' | 'gnu' | 'pax' = 'ustar',
  extraArgs: string[] = [],
): string {
  const dir = tempDir('vmhub-tar-');
  for (const m of members) {
    fs.mkdirSync(path.dirname(path.join(dir, m.name)), { recursive: true });
    fs.writeFileSync(path.join(dir, m.name), m.bytes);
  }
  execFileSync('tar', [`--format=${format}`, '-cf', out, '-C', dir, ...extraArgs, ...members.map((m) => m.name)]);
  fs.rmSync(dir, { recursive: true, force: true });
  return out;
}

/**
 * An OVA from a descriptor: each referenced file gets `fileSize` filler bytes, the descriptor's sizes
 * are set to match, and a manifest of the chosen algorithm is added after the descriptor.
 */
export function ovaFromDescriptor(
  out: string,
  descriptor: string,
  options: {
    fileSize?: number;
    manifest?: 'sha1' | 'sha256' | 'sha512' | false;
    crlf?: boolean;
    format?: 'ustar' | 'gnu' | 'pax';
    descriptorName?: string;
  } = {},
): { path: string; members: Member[] } {
  const hrefs = referencedFiles(descriptor);
  const files = hrefs.map((href, i) => ({ name: href, bytes: filler(options.fileSize ?? 4096 + i, i + 1) }));
  const ovf = {
    name: options.descriptorName ?? 'appliance.ovf',
    bytes: Buffer.from(withFileSizes(descriptor, Object.fromEntries(files.map((f) => [f.name, f.bytes.length])))),
  };
  const members: Member[] = [ovf];
  if (options.manifest !== false) {
    const alg = options.manifest ?? 'sha256';
    const lines = [ovf, ...files].map((m, i) => manifestLine(alg, m.name, m.bytes, i % 3));
    members.push({
      name: ovf.name.replace(/\.ovf$/, '.mf'),
      bytes: Buffer.from(lines.join(options.crlf ? '\r\n' : '\n') + '\n'),
    });
  }
  members.push(...files);
  return { path: tarArchive(out, members, options.format), members };
}

/** A real ISO 9660 image with Joliet, optionally El Torito bootable, made by xorriso. */
export function isoImage(
  out: string,
  options: { volumeId: string; publisher?: string; application?: string; bootable?: boolean; extraBytes?: number },
): string {
  const dir = tempDir('vmhub-iso-');
  fs.writeFileSync(path.join(dir, 'README.TXT'), 'vmhub test volume\n');
  if (options.extraBytes) fs.writeFileSync(path.join(dir, 'payload.bin'), filler(options.extraBytes, 5));
  const args = ['-as', 'mkisofs', '-quiet', '-J', '-V', options.volumeId, '-o', out];
  if (options.publisher) args.push('-publisher', options.publisher);
  if (options.application) args.push('-A', options.application);
  if (options.bootable) {
    fs.writeFileSync(path.join(dir, 'boot.img'), Buffer.alloc(2048, 0x90));
    args.push('-b', 'boot.img', '-no-emul-boot', '-boot-load-size', '4');
  }
  execFileSync('xorriso', [...args, dir], { stdio: 'ignore' });
  fs.rmSync(dir, { recursive: true, force: true });
  return out;
}

/** An archive as vmhub writes one (ustar, PAX where needed), built in memory. */
export function archive(members: Member[], end = true): Buffer {
  const parts = members.flatMap((m) => [
    entryHeader(m.name, m.bytes.length),
    m.bytes,
    Buffer.alloc(padded(m.bytes.length) - m.bytes.length),
  ]);
  return Buffer.concat(end ? [...parts, END_OF_ARCHIVE] : parts);
}
