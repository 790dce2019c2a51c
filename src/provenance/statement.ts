import type { KeyObject } from 'node:crypto';
import { VmhubError } from '../shared/errors';
import type { ImageFormat } from '../shared/image-format';
import type { VersionRef } from '../shared/image-version';
import { signEnvelope, verifyEnvelope, type Envelope } from './dsse';
import type { TrustedKey } from './keys';

/**
 * What a publish signs: an in-toto Statement (in-toto.io/Statement/v1) whose subject is the image's bytes
 * under the name `<image>@<version>`, and whose predicate lists the SHA-256 of every member of an OVA
 * (or file of an OVF package), the blob's blocks, where the bytes came from, the run and the time.
 */
export const STATEMENT_TYPE = 'https://in-toto.io/Statement/v1';
export const PAYLOAD_TYPE = 'application/vnd.in-toto+json';
export const PREDICATE_TYPE = 'https://vmhub.dev/provenance/publish/v1';

export interface SignedMember {
  name: string;
  sha256: string;
  size: number;
}

/**
 * The blob's blocks as publish committed them: every block `size` bytes but the last, and the SHA-256 of
 * their ordered IDs (../storage/block-ids blockListDigest), each ID naming its block's index and digest.
 * A copy whose committed IDs hash to `listSha256` holds, block by block, bytes whose digests are signed.
 */
export interface SignedBlocks {
  size: number;
  listSha256: string;
}

export interface PublishPredicate {
  image: string;
  version: string;
  format: ImageFormat;
  sizeBytes: number;
  members: SignedMember[];
  /** Absent from statements signed before blocks were. */
  blocks?: SignedBlocks;
  /** The source as the operator named it, without credentials or query string. */
  source: string;
  run: { workflowId: string; runId: string };
  publishedAt: string;
}

export interface Statement {
  _type: typeof STATEMENT_TYPE;
  subject: Array<{ name: string; digest: { sha256: string } }>;
  predicateType: typeof PREDICATE_TYPE;
  predicate: PublishPredicate;
}

export interface Published extends PublishPredicate {
  sha256: string;
}

/** The subject name a statement must carry for a version: a statement of another version proves nothing here. */
export function subjectName(ref: VersionRef): string {
  return `${ref.image}@${ref.version}`;
}

export function statementOf(published: Published): Statement {
  const { sha256, ...predicate } = published;
  return {
    _type: STATEMENT_TYPE,
    subject: [{ name: subjectName(published), digest: { sha256 } }],
    predicateType: PREDICATE_TYPE,
    predicate,
  };
}

export function signStatement(published: Published, key: KeyObject): Envelope {
  return signEnvelope(PAYLOAD_TYPE, Buffer.from(JSON.stringify(statementOf(published))), key);
}

/** What a verified statement says of one version: the digests its bytes must have, and who signed them. */
export interface Provenance {
  keyid: string;
  sha256: string;
  sizeBytes: number;
  members: SignedMember[];
  blocks?: SignedBlocks;
  predicate: PublishPredicate;
}

const HEX64 = /^[0-9a-f]{64}$/;

/**
 * The signed digests of `ref`, once the envelope verifies with a trusted key and its statement is a vmhub
 * publish statement of exactly this image and version. Everything else about the version (the catalog's
 * SHA-256, its blob path) is a label; these digests are what the bytes are checked against.
 */
export function verifyProvenance(envelope: Envelope, trusted: readonly TrustedKey[], ref: VersionRef): Provenance {
  const { body, keyid } = verifyEnvelope(envelope, PAYLOAD_TYPE, trusted);
  let statement: Statement;
  try {
    statement = JSON.parse(body.toString('utf8')) as Statement;
  } catch {
    throw mismatch('the signed payload is not JSON');
  }
  if (statement?._type !== STATEMENT_TYPE || statement.predicateType !== PREDICATE_TYPE) {
    throw mismatch(`the signed statement is not a vmhub publish statement (${PREDICATE_TYPE})`);
  }
  const subjects = Array.isArray(statement.subject) ? statement.subject : [];
  const name = subjectName(ref);
  const subject = subjects.find((s) => s?.name === name);
  const p = statement.predicate;
  if (!subject || p?.image !== ref.image || p.version !== ref.version) {
    throw mismatch(`the signed statement is of ${subjects.map((s) => s?.name).join(', ') || 'nothing'}, not ${name}`);
  }
  const sha256 = subject.digest?.sha256;
  if (typeof sha256 !== 'string' || !HEX64.test(sha256)) throw mismatch('the signed statement has no SHA-256 of the image');
  if (!Number.isSafeInteger(p.sizeBytes) || !Array.isArray(p.members))
    throw mismatch('the signed statement has no size or members');
  for (const m of p.members) {
    if (typeof m?.name !== 'string' || typeof m.sha256 !== 'string' || !HEX64.test(m.sha256) || !Number.isSafeInteger(m.size)) {
      throw mismatch('the signed statement lists a member without a name, SHA-256 and size');
    }
  }
  if (p.blocks !== undefined && !(Number.isSafeInteger(p.blocks?.size) && p.blocks.size > 0 && HEX64.test(p.blocks.listSha256))) {
    throw mismatch('the signed statement lists its blocks without a size and a SHA-256 of their IDs');
  }
  return { keyid, sha256, sizeBytes: p.sizeBytes, members: p.members, blocks: p.blocks, predicate: p };
}

/**
 * Checks bytes hashed on this side against the signed digests: the whole image, and each member that was
 * hashed. A member the statement lists but the caller did not hash is not checked here; one hashed but not
 * signed is refused, since nothing vouches for it.
 */
export function checkAgainstProvenance(
  provenance: Provenance,
  hashed: { sha256: string; sizeBytes: number; members?: ReadonlyArray<{ name: string; sha256: string }> },
): void {
  if (hashed.sha256 !== provenance.sha256 || hashed.sizeBytes !== provenance.sizeBytes) {
    throw mismatch(
      `the bytes have SHA-256 ${hashed.sha256} (${hashed.sizeBytes} bytes); the signed statement says ${provenance.sha256} (${provenance.sizeBytes} bytes)`,
    );
  }
  for (const member of hashed.members ?? []) {
    const signed = provenance.members.find((m) => m.name === member.name);
    if (!signed) throw mismatch(`member ${JSON.stringify(member.name)} is not in the signed statement`);
    if (signed.sha256 !== member.sha256) {
      throw mismatch(
        `member ${JSON.stringify(member.name)} has SHA-256 ${member.sha256}; the signed statement says ${signed.sha256}`,
      );
    }
  }
}

function mismatch(reason: string): VmhubError {
  return new VmhubError('ProvenanceMismatch', reason);
}
