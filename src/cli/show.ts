import type { Command } from 'commander';
import { originalSource, type DeploymentRecord } from '../catalog/deployment-records';
import type { ChannelItemRecord, ChannelRecord } from '../catalog/channel-records';
import type { ImageVersionRecord, ReplicaRecord, VersionOverlap } from '../catalog/image-records';
import { loadTrustedKeys } from '../provenance/keys';
import { verifyProvenance } from '../provenance/statement';
import { isVmhubError } from '../shared/errors';
import { findFormat } from '../shared/image-format';
import { lifecycleLines } from '../lifecycle/deprecation';
import { describePlacement } from '../shared/sddc-target';
import { formatBytes, formatMiB, plural } from '../shared/units';
import { parseRef, unknownVersion } from './checks';
import { examples, jsonOption } from './command';
import type { CliDeps } from './deps';
import { sourceName } from './operations';
import { print, table } from './output';

export interface ShowOptions {
  image: string;
  /** A version, `latest` or `latest-pre`. */
  version: string;
}

/** The version's record and, per SDDC, its deployment: the latest attempt's fields, every attempt kept and the origin. */
export type ShowResult = ImageVersionRecord & {
  deployments: DeploymentRecord[];
  signature?: SignatureCheck;
  /** The image's channels, and the SDDCs whose channel item holds this version. */
  channels: ChannelRecord[];
  channelItems: ChannelItemRecord[];
};

/** Who signed the version, and whether its envelope verifies with the keys this CLI trusts (VMHUB_TRUSTED_KEYS). */
export interface SignatureCheck {
  keyid: string;
  signedAt: Date;
  verified: 'verified' | 'not verified' | 'not checked';
  note: string;
}

/**
 * Checks the envelope the catalog keeps, as far as the CLI can: agents read theirs from storage and check
 * the bytes, so this says only whether the catalog's copy is signed by a key this side trusts.
 */
function checkSignature(record: ImageVersionRecord, trustedKeys: string | undefined): SignatureCheck | undefined {
  const p = record.provenance;
  if (!p) return undefined;
  const base = { keyid: p.keyid, signedAt: p.signedAt };
  const trusted = loadTrustedKeys(trustedKeys);
  if (!p.envelope) return { ...base, verified: 'not checked', note: `the envelope is only in storage (${p.envelopeBlob})` };
  if (trusted.length === 0) return { ...base, verified: 'not checked', note: 'this side trusts no key (VMHUB_TRUSTED_KEYS)' };
  try {
    const signed = verifyProvenance(p.envelope, trusted, record);
    if (signed.sha256 !== record.sha256) {
      return { ...base, verified: 'not verified', note: `the catalog's SHA-256 is not the signed ${signed.sha256}` };
    }
    return { ...base, verified: 'verified', note: `with trusted key ${signed.keyid.slice(0, 16)}…` };
  } catch (err) {
    if (!isVmhubError(err)) throw err;
    return { ...base, verified: 'not verified', note: `${err.type}: ${err.message}` };
  }
}

export async function run(options: ShowOptions, deps: CliDeps): Promise<ShowResult> {
  const { image, version } = options;
  const catalog = await deps.catalog();
  const record = await catalog.versions.resolve(image, version);
  if (!record) throw await unknownVersion(catalog, image, version);
  const signature = checkSignature(record, deps.config.trustedKeys);
  return {
    ...record,
    deployments: await catalog.deployments.of(record.image, record.version),
    ...(signature ? { signature } : {}),
    channels: await catalog.channels.list(record.image),
    channelItems: (await catalog.channels.itemsOf(record.image)).filter((i) => i.version === record.version),
  };
}

/** "stable → 1.0.0 (rolled back; before: 2.0.0)" */
function channelLine(c: ChannelRecord): string {
  const notes = [c.rolledBack ? 'rolled back' : '', c.previous.length > 0 ? `before: ${c.previous.join(', ')}` : ''].filter(
    Boolean,
  );
  return `channel    ${c.channel} → ${c.version}${notes.length > 0 ? ` (${notes.join('; ')})` : ''}`;
}

/** "stable on east-1: item 5e0f…, 12 MiB copied in the vCenter, nothing fetched" */
function channelItemLine(i: ChannelItemRecord): string {
  const fetched = i.bytesFetched > 0 ? `${formatBytes(i.bytesFetched)} fetched` : 'nothing fetched';
  return `  ${i.channel} on ${i.sddc}: item ${i.placement.itemId}, ${formatBytes(i.bytesCopied)} copied in the vCenter, ${fetched}`;
}

/** "gate passed: instantiate, hardware, power-on, guest" / "gate failed at guest: …" */
function gateText(d: DeploymentRecord): string {
  if (!d.gate) return '';
  const failed = d.gate.checks.find((c) => !c.passed);
  return failed
    ? `, gate failed at ${failed.check}`
    : `, gate passed: ${d.gate.checks.map((c) => c.check).join(', ') || 'no VM check'}`;
}

/** The latest attempt's source, and where the bytes originally came from when that was elsewhere. */
function sourceText(d: DeploymentRecord): string {
  const origin = originalSource(d);
  return `${sourceName(d)}${origin !== undefined && origin !== d.source ? ` (originally from ${origin})` : ''}`;
}

/**
 * A copy's status as of its latest attempt: a deploy, or VerifySddcs marking it `drifted` (its reason then
 * follows where it is). A copy said to be there says since when: VerifySddcs leaves a copy it finds whole as it was.
 */
function statusText(d: DeploymentRecord): string {
  const at = new Date(d.updatedAt).toISOString().replace(/\.\d{3}Z$/, 'Z');
  if (d.status === 'drifted') return `drifted (found ${at})`;
  if (d.status !== 'deployed' && d.status !== 'already-present') return d.status;
  return `${d.status} (not checked since ${at})`;
}

function whereText(d: DeploymentRecord): string {
  const where = describePlacement(d);
  if (d.status === 'drifted') return [where, d.error].filter(Boolean).join(': ');
  return where ?? d.error ?? '';
}

/** Where the version's bytes are: the primary's blob, which a retire has removed. */
function blobLine(r: ShowResult): string {
  const blob = `${r.location.storage}/${r.location.container}/${r.location.blob}`;
  return r.status === 'retired' ? `blob       none: removed by the retire (was ${blob})` : `blob       ${blob}`;
}

function signatureLine(s: SignatureCheck | undefined): string {
  if (!s) return 'signed     no: agents refuse to deploy it';
  const at = new Date(s.signedAt).toISOString().replace(/\.\d{3}Z$/, 'Z');
  return `signed     by key ${s.keyid} at ${at}; ${s.verified} (${s.note})`;
}

/** What a delta deploy from the previous version would not fetch. */
function overlapLine(o: VersionOverlap): string {
  const percent = o.blockCount > 0 ? ((100 * o.sharedBlocks) / o.blockCount).toFixed(1) : '0.0';
  return `overlap    ${o.sharedBlocks} of ${plural(o.blockCount, 'block')} (${percent} %) shared with ${o.previousVersion}`;
}

/** Why a replica is not right, or what its copy sent between data centers (the egress an operator pays for). */
function replicaNote(x: ReplicaRecord): string {
  if (x.reason || !x.crossed) return x.reason ?? '';
  return `${formatBytes(x.crossed.bytes)} crossed${x.crossed.from ? `, started from ${x.crossed.from}` : ''}`;
}

export function renderText(r: ShowResult): string[] {
  return [
    `${r.image}@${r.version}  ${r.status}  ${r.format}  ${formatBytes(r.sizeBytes)}`,
    `sha256     ${r.sha256 ?? '-'}`,
    blobLine(r),
    signatureLine(r.signature),
    ...lifecycleLines(r, new Date()),
    ...(r.overlap ? [overlapLine(r.overlap)] : []),
    ...r.channels.map(channelLine),
    ...(r.channelItems.length > 0 ? [`channel items holding ${r.version}:`, ...r.channelItems.map(channelItemLine)] : []),
    ...(r.metadata ? (findFormat(r.format)?.metadataLines(r.metadata) ?? []) : []),
    ...(r.replicas.length > 0
      ? [
          '',
          ...table(
            ['REPLICA', 'STATUS', 'NOTE'],
            r.replicas.map((x) => [x.location, x.status, replicaNote(x)]),
          ),
        ]
      : []),
    ...(r.deployments.length > 0
      ? [
          '',
          ...table(
            ['SDDC', 'STATUS', 'ATTEMPTS', 'SOURCE', 'WHERE / REASON'],
            r.deployments.map((d) => [
              d.sddc,
              statusText(d),
              String(Math.max(d.attempts?.length ?? 0, 1)),
              sourceText(d),
              whereText(d) +
                (d.instantiated
                  ? `, instantiated as ${d.instantiated.vm} (${plural(d.instantiated.cpus, 'CPU')}, ${formatMiB(d.instantiated.memoryMiB)}) and removed`
                  : '') +
                gateText(d),
            ]),
          ),
        ]
      : []),
  ];
}

export function register(program: Command, deps: CliDeps): void {
  program
    .command('show')
    .description(
      "one version: its record, metadata, replicas and deployments (each SDDC's latest attempt, and where its copy came from)",
    )
    .argument('<ref>', 'image@version, image@latest (the highest available release) or image@latest-pre (pre-releases count)')
    .addOption(jsonOption())
    .addHelpText(
      'after',
      examples('vmhub show ubuntu-app@2.3.1', 'vmhub show ubuntu-app@latest --json', 'vmhub show ubuntu-app@latest-pre'),
    )
    .action(async (ref: string, opts: { json?: boolean }) => {
      const result = await run(parseRef(ref), deps);
      print(deps.io, Boolean(opts.json), result, () => renderText(result));
    });
}
