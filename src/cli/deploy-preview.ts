import type { Catalog } from '../catalog/catalog';
import type { DeploymentRecord } from '../catalog/deployment-records';
import type { ImageVersionRecord } from '../catalog/image-records';
import { planDeployment, type DeploymentTarget } from '../deploy/resolve-deploy';
import { describeTarget } from '../shared/sddc-target';
import { formatBytes, plural } from '../shared/units';
import { loadTopology } from '../topology/topology';
import { deployableVersion, noAgentRefusal, registeredSddcs, requireControlWorkers, silentAgents } from './checks';
import type { CliDeps } from './deps';
import { CliError } from './errors';
import { table } from './output';

export interface DeployPreviewOptions {
  image: string;
  /** A version, `latest` or `latest-pre`. */
  version: string;
  to: string[] | 'all';
  force: boolean;
  allOrNothing?: boolean;
}

export type PreviewAction = 'deploy' | 'already-present' | 'skipped' | 'no-agent' | 'refused';

/** What a deploy would do on one SDDC. */
export interface DeployPreviewRow {
  sddc: string;
  dataCenter: string;
  action: PreviewAction;
  /** Where the SDDC keeps images: its agent's directory, or a content library. */
  into: string;
  /** The storage locations its agent would read from, nearest first (it falls back down the list). */
  sources: string[];
  /**
   * Bytes to move to the SDDC: the whole image, or, when the catalog says the SDDC holds the version
   * published before it, only the blocks the two do not share (a delta deploy copies the rest from disk).
   */
  bytesToMove: number;
  /** The earlier version on the SDDC a delta deploy would copy shared blocks from. */
  reusesVersion: string | null;
  reason: string | null;
}

export interface DeployPreviewResult {
  dryRun: true;
  image: string;
  version: string;
  sizeBytes: number;
  results: DeployPreviewRow[];
  counts: Partial<Record<PreviewAction, number>>;
  bytesToMove: number;
  /** Why the deploy itself would be refused now (`Type: message`); empty when it would start. */
  refusals: string[];
}

const holds = (d: DeploymentRecord | undefined) => d?.status === 'deployed' || d?.status === 'already-present';

/**
 * `deploy --dry-run`: per SDDC what a deploy would do, from the deploy's own plan (planDeployment: capacity
 * fit and source order), the catalog's deployment records and the agents' polls. Nothing is started.
 */
export async function preview(options: DeployPreviewOptions, deps: CliDeps): Promise<DeployPreviewResult> {
  const catalog = await deps.catalog();
  const sddcs = await registeredSddcs(catalog, options.to, '--to');
  const record = await deployableVersion(catalog, options.image, options.version, options.force);
  const plan = await planDeployment(catalog, loadTopology(deps.config.topologyPath), {
    image: options.image,
    version: record.version,
    sddcs: options.to,
    force: options.force,
  });
  const client = await deps.temporal();
  // An SDDC the version does not fit, or whose policy refuses it, ends before its agent is asked: it needs none.
  const short = new Set(plan.targets.filter((t) => t.shortfall || t.refused).map((t) => t.sddc.name));
  const fitting = sddcs.filter((s) => !short.has(s.name));
  const missing = await silentAgents(client, fitting);
  const refusals: string[] = await requireControlWorkers(client, deps.config).then(
    () => [],
    (err: unknown) => {
      if (!(err instanceof CliError)) throw err;
      return [`${err.type}: ${err.message}`];
    },
  );
  const noAgent = noAgentRefusal(fitting, missing, options.allOrNothing === true);
  if (noAgent) refusals.push(`${noAgent.type}: ${noAgent.message}`);
  const silent = new Set(missing.map((s) => s.name));
  const present = await byName(catalog, record.image, record.version);
  const base = record.overlap ? await byName(catalog, record.image, record.overlap.previousVersion) : new Map();
  const results = plan.targets.map((t) => rowOf(t, record, { silent: silent.has(t.sddc.name), present, base }));
  const counts: DeployPreviewResult['counts'] = {};
  for (const r of results) counts[r.action] = (counts[r.action] ?? 0) + 1;
  return {
    dryRun: true,
    image: record.image,
    version: record.version,
    sizeBytes: record.sizeBytes,
    results,
    counts,
    bytesToMove: results.reduce((n, r) => n + r.bytesToMove, 0),
    refusals,
  };
}

async function byName(catalog: Catalog, image: string, version: string): Promise<Map<string, DeploymentRecord>> {
  return new Map((await catalog.deployments.of(image, version)).map((d) => [d.sddc, d]));
}

function rowOf(
  t: DeploymentTarget,
  record: ImageVersionRecord,
  known: { silent: boolean; present: Map<string, DeploymentRecord>; base: Map<string, DeploymentRecord> },
): DeployPreviewRow {
  const name = t.sddc.name;
  const row = { sddc: name, dataCenter: t.sddc.dataCenter, into: describeTarget(t.sddc.target), sources: [], bytesToMove: 0 };
  const none = { reusesVersion: null, reason: null };
  // In the order the deploy meets them: the capacity check, the agent, then the agent's look for a copy.
  if (t.shortfall) return { ...row, ...none, action: 'skipped', reason: `does not fit: ${t.shortfall}` };
  if (t.refused) return { ...row, ...none, action: 'refused', reason: t.refused };
  if (known.silent) {
    const reason = `no agent has polled ${t.sddc.taskQueue} in the last 75 s; start it with \`npm run agent -- ${name}\``;
    return { ...row, ...none, action: 'no-agent', reason };
  }
  if (holds(known.present.get(name))) return { ...row, ...none, action: 'already-present' };
  const sources = t.sources.map((s) => s.location);
  const overlap = record.overlap;
  if (!overlap || !holds(known.base.get(name)))
    return { ...row, ...none, action: 'deploy', sources, bytesToMove: record.sizeBytes };
  // The blocks that differ, each counted whole: at most a partial last block more than the agent fetches.
  const fetched = Math.min(record.sizeBytes, (overlap.blockCount - overlap.sharedBlocks) * record.blockSize);
  return {
    ...row,
    action: 'deploy',
    sources,
    bytesToMove: fetched,
    reusesVersion: overlap.previousVersion,
    reason: null,
  };
}

const WORDS: Record<PreviewAction, string> = {
  deploy: 'deploy',
  'already-present': 'already present',
  skipped: 'skip',
  'no-agent': 'no agent',
  refused: 'refuse',
};

export function renderPreview(r: DeployPreviewResult): string[] {
  const c = r.counts;
  const parts = [
    ...(c.deploy ? [`deploy ${c.deploy} (${formatBytes(r.bytesToMove)} to move)`] : []),
    ...(c['already-present'] ? [`find ${c['already-present']} already present`] : []),
    ...(c.skipped ? [`skip ${c.skipped}`] : []),
    ...(c['no-agent'] ? [`find no live agent for ${c['no-agent']}`] : []),
    ...(c.refused ? [`refuse ${c.refused} by its OVF policy`] : []),
  ];
  const rows = r.results.map((row) => [
    row.sddc,
    row.dataCenter,
    WORDS[row.action],
    row.action === 'deploy' ? formatBytes(row.bytesToMove) : '-',
    row.action === 'deploy'
      ? `from ${row.sources.join(', then ')}${row.reusesVersion ? ` (the rest copied from ${row.reusesVersion} on the SDDC)` : ''} into ${row.into}`
      : (row.reason ?? `per the catalog; the agent checks again when it deploys`),
  ]);
  return [
    `deploying ${r.image}@${r.version} (${formatBytes(r.sizeBytes)}) to ${plural(r.results.length, 'SDDC')} would ${parts.join(', ')}; nothing was started`,
    ...table(['SDDC', 'DATA CENTER', 'WOULD', 'TO MOVE', 'DETAILS'], rows),
    ...r.refusals.map((m) => `the deploy would be refused now: ${m}`),
  ];
}
