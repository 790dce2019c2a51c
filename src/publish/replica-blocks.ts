import type { ImageVersionRecord } from '../catalog/image-records';
import type { Log } from '../engine/liveness';
import type { TrustedKey } from '../provenance/keys';
import { verifyProvenance, type SignedBlocks } from '../provenance/statement';
import { readStoredEnvelope } from '../provenance/stored';
import { runPool } from '../shared/concurrency';
import { VmhubError } from '../shared/errors';
import { blockDigest, blockListDigest, parseBlockId } from '../storage/block-ids';
import type { Block, BlockStore } from '../storage/block-store';
import { expectedSha256 } from './replica-content';

/**
 * A replica proven block by block instead of by one read of all its bytes, when its blob was seeded from
 * a replica of an earlier version hashed whole at the etag it was copied at, and both versions' signed
 * statements list their blocks (the SHA-256 of the ordered IDs, each ID naming its block's digest):
 * - the seed's committed blocks are that replica's as it was hashed (Copy Blob of it at that etag), and the commit is conditioned on the seed's etag and names them committed, so it never takes a
 *   block anyone staged under one of their IDs since;
 * - their bytes have the digests the earlier version signed: that replica's IDs hash to its signed list,
 *   and its bytes were proven to be that version's;
 * - every other block is read back after the commit, at the commit's etag, and checked against its ID,
 *   which the new version's signed list binds.
 * So every block of the replica has the digest the new version signed for it, and what is read is only
 * what was staged. Short of that (no trusted keys, a statement without blocks, a list that hashes
 * otherwise), the replica is left to the read of all its bytes (./replica-content).
 */

/** The new version's copy and what its seed came from, as the proof needs them. */
export interface ProofBasis {
  record: ImageVersionRecord;
  /** The new version's committed blocks on the primary. */
  blocks: readonly Block[];
  /** The earlier version the seed was copied from, and the blocks the seed holds committed. */
  base: ImageVersionRecord;
  seeded: readonly Block[];
  /** The store where both versions' signed statements are kept: the primary. */
  primary: BlockStore;
  trusted: readonly TrustedKey[];
  signal: AbortSignal;
  log: Log;
}

/**
 * Whether the new version's replica can be proven by its blocks: both versions signed their blocks, at
 * one block size, and the new version's committed list on the primary and the seed's list hash to what
 * each signed. Never throws but for an abort: anything unproven only means the read of all the bytes.
 */
export async function provableByBlocks(basis: ProofBasis): Promise<boolean> {
  const { record, base, signal, log } = basis;
  try {
    const [signed, signedBase] = await Promise.all([signedBlocks(basis, record), signedBlocks(basis, base)]);
    const why =
      !signed || !signedBase
        ? 'a statement lists no blocks'
        : signed.size !== signedBase.size
          ? 'the versions have different block sizes'
          : !listMatches(basis.blocks, signed, record.sizeBytes)
            ? "the primary's block list is not the one signed"
            : !listMatches(basis.seeded, signedBase, base.sizeBytes)
              ? `the seed's block list is not the one ${base.version} signed`
              : undefined;
    if (why)
      log.info('the replica will be proven by reading all its bytes', {
        image: record.image,
        version: record.version,
        reason: why,
      });
    return why === undefined;
  } catch (err) {
    // A statement missing, refused or unreadable now: the read of all the bytes proves the replica all the same.
    if (signal.aborted) throw err;
    log.warn('the replica will be proven by reading all its bytes', {
      image: record.image,
      version: record.version,
      reason: err instanceof Error ? err.message : String(err),
    });
    return false;
  }
}

/** The blocks a version signed, from its statement beside its blob on the primary, checked against what the catalog says its bytes are. */
async function signedBlocks(basis: ProofBasis, version: ImageVersionRecord): Promise<SignedBlocks | undefined> {
  const envelope = await readStoredEnvelope(basis.primary, version.location.blob, basis.signal);
  const provenance = verifyProvenance(envelope, basis.trusted, version);
  // The catalog's SHA-256 is what a replica was checked by: a statement of other bytes proves nothing of it.
  if (provenance.sha256 !== expectedSha256(version) || provenance.sizeBytes !== version.sizeBytes) {
    throw new VmhubError(
      'ProvenanceMismatch',
      `${version.image}@${version.version}: the catalog says SHA-256 ${expectedSha256(version)} (${version.sizeBytes} bytes), the signed statement ${provenance.sha256} (${provenance.sizeBytes} bytes)`,
    );
  }
  return provenance.blocks;
}

/** Whether blocks are the signed list: their IDs hash to it, each block is the signed size but a shorter last, and they add up to the image. */
function listMatches(blocks: readonly Block[], signed: SignedBlocks, sizeBytes: number): boolean {
  const last = blocks.length - 1;
  const sized = blocks.every((b, i) => (i < last ? b.size === signed.size : b.size > 0 && b.size <= signed.size));
  const total = blocks.reduce((n, b) => n + b.size, 0);
  return sized && total === sizeBytes && blockListDigest(blocks.map((b) => b.name)) === signed.listSha256;
}

/** Whether two block lists are the same blocks, by ID and size, in the same order. */
function sameBlocks(a: readonly Block[], b: readonly Block[]): boolean {
  return a.length === b.length && a.every((x, i) => x.name === b[i].name && x.size === b[i].size);
}

/** What reading back the staged blocks found: right at the commit's etag, or why not. */
export type StagedCheck = { verified: true; etag: string } | { verified: false; reason: string };

/**
 * Reads back the blocks at `indices` of the committed blob and checks each against the digest in its ID,
 * with the blob at `etag` (the commit's) before and after, and its committed list, read in between, the
 * primary's by ID and size: blocks staged under the right IDs at other sizes would shift every offset.
 */
export async function checkStagedBlocks(
  store: BlockStore,
  blob: string,
  blocks: { committed: readonly Block[]; offsets: readonly number[] },
  indices: readonly number[],
  { etag, concurrency, signal }: { etag: string; concurrency: number; signal: AbortSignal },
): Promise<StagedCheck> {
  const atCommit = async () => (await store.getProperties(blob, { abortSignal: signal })).etag === etag;
  if (!(await atCommit())) return { verified: false, reason: 'changed after the commit' };
  if (!sameBlocks(await store.committedBlocks(blob, { abortSignal: signal }), blocks.committed)) {
    return { verified: false, reason: "has committed blocks other than the primary's, by ID or size" };
  }
  const wrong: number[] = [];
  await runPool(indices, concurrency, async (i) => {
    const { name, size } = blocks.committed[i];
    const bytes = await store.readInto(blob, Buffer.allocUnsafe(size), blocks.offsets[i], { abortSignal: signal });
    if ((await blockDigest(bytes)) !== parseBlockId(name)?.digest) wrong.push(i);
  });
  if (!(await atCommit())) return { verified: false, reason: 'changed while its blocks were read back' };
  if (wrong.length > 0) {
    return { verified: false, reason: `block ${wrong.sort((a, b) => a - b).join(', ')} read back does not match its digest` };
  }
  return { verified: true, etag };
}
