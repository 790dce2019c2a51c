import { randomUUID } from 'node:crypto';
import type { Command } from 'commander';
import type { Catalog } from '../catalog/catalog';
import { retentionPlan } from '../lifecycle/retention';
import { previewRetire, type RetirePreview } from '../lifecycle/retire-preview';
import { RETENTION_MAX_RETIRES, type RetentionResult } from '../shared/lifecycle-input';
import { VmhubError } from '../shared/errors';
import { validateImageName } from '../shared/names';
import { formatBytes, plural } from '../shared/units';
import { examples, jsonOption } from './command';
import { requireKnownImage } from './checks';
import type { CliDeps } from './deps';
import { requireWorker } from './operations';
import { print } from './output';
import { renderPreview, retireDeps } from './retire';

/** A version retention would retire, why, and what its retire would remove. */
export type RetentionCandidate = RetirePreview & { why: string };

export interface RetentionPreviewResult {
  dryRun: true;
  image: string | null;
  versions: RetentionCandidate[];
  bytes: { sddcs: number; storage: number };
  /** A run retires at most this many; the next run takes up the rest. */
  limit: number;
}

export type RetentionApplyResult = RetentionResult & { dryRun: false; workflowId: string };

/**
 * `retention apply`: runs ApplyRetention now, as its schedule would (for one image's policy, or every
 * one), and waits for it. Its workflow ID is `retention:<image|all>:<random>`.
 */
export async function run(options: { image?: string }, deps: CliDeps): Promise<RetentionApplyResult> {
  const client = await deps.temporal();
  await requireWorker(client, deps.config);
  if (options.image) await requirePolicy(await deps.catalog(), options.image);
  // One at a time with the schedule's runs, or two would retire the same versions and each report the other's as
  // failed. Only the runs on this task queue: one on another queue of the namespace is another deployment's,
  // which may have no worker at all, and would be waited for forever.
  for await (const running of client.workflow.list({
    query: `WorkflowType = 'ApplyRetention' AND ExecutionStatus = 'Running' AND TaskQueue = '${deps.config.taskQueue}'`,
  })) {
    await client.workflow
      .getHandle(running.workflowId, running.runId)
      .result()
      .catch(() => undefined);
  }
  const workflowId = `retention:${options.image ?? 'all'}:${randomUUID().slice(0, 8)}`;
  const result = (await client.workflow.execute('ApplyRetention', {
    args: [options.image ? { image: options.image } : {}],
    taskQueue: deps.config.taskQueue,
    workflowId,
    staticSummary: `Apply the retention ${options.image ? `policy of ${options.image}` : 'policies'} now`,
  })) as RetentionResult;
  return { dryRun: false, workflowId, ...result };
}

/**
 * `retention apply --dry-run`: the versions a run would retire now, chosen by the plan its activity makes
 * (retentionPlan), each with what its retire would remove. Nothing is started or changed.
 */
export async function preview(options: { image?: string }, deps: CliDeps): Promise<RetentionPreviewResult> {
  const lifecycle = await retireDeps(deps);
  if (options.image) await requirePolicy(lifecycle.catalog, options.image);
  const plan = await retentionPlan(lifecycle, { image: options.image, limit: RETENTION_MAX_RETIRES });
  const policies = new Map((await lifecycle.catalog.retention.list()).map((p) => [p.image, p.keep]));
  const versions: RetentionCandidate[] = [];
  for (const ref of plan) {
    const p = await previewRetire(lifecycle, ref);
    const why =
      p.status === 'retiring'
        ? 'a retire that stopped left it retiring'
        : `beyond the newest ${plural(policies.get(ref.image) ?? 0, 'version')} its policy keeps, and no SDDC holds it`;
    versions.push({ ...p, why });
  }
  const sum = (key: 'sddcs' | 'storage') => versions.reduce((n, v) => n + v.bytes[key], 0);
  return {
    dryRun: true,
    image: options.image ?? null,
    versions,
    bytes: { sddcs: sum('sddcs'), storage: sum('storage') },
    limit: RETENTION_MAX_RETIRES,
  };
}

export function renderText(r: RetentionPreviewResult | RetentionApplyResult): string[] {
  if (r.dryRun) return renderRetentionPreview(r);
  const lines = [`retired ${plural(r.retired.length, 'version')} under retention policies  (workflow ${r.workflowId})`];
  lines.push(...r.retired.map((ref) => `  ${ref}`));
  if (r.failed.length > 0)
    lines.push(`${plural(r.failed.length, 'retire')} failed:`, ...r.failed.map((f) => `  ${f.ref}: ${f.reason}`));
  return lines;
}

function renderRetentionPreview(r: RetentionPreviewResult): string[] {
  if (r.versions.length === 0) {
    return [`retention would retire nothing now${r.image ? ` of ${r.image}` : ''}; nothing was changed`];
  }
  const lines = [
    `retention would retire ${plural(r.versions.length, 'version')}, removing ${formatBytes(r.bytes.storage)} from storage and ${formatBytes(r.bytes.sddcs)} from SDDCs; nothing was changed`,
  ];
  if (r.versions.length === r.limit) lines.push(`(a run retires at most ${r.limit}; the next run takes up the rest)`);
  for (const v of r.versions) lines.push('', `${v.image}@${v.version}: ${v.why}`, ...renderPreview(v).slice(1));
  return lines;
}

/** 0, or 2 when some retire failed. */
export function exitCode(r: RetentionPreviewResult | RetentionApplyResult): number {
  return !r.dryRun && r.failed.length > 0 ? 2 : 0;
}

/** `vmhub retention apply`, a command of the `retention` group. */
export function register(retention: Command, deps: CliDeps): void {
  retention
    .command('apply')
    .description('apply the retention policies now (what the schedule does hourly), and wait; exits 2 when some retire failed')
    .option('--image <name>', "only this image's policy")
    .option('--dry-run', 'list the versions it would retire and what each retire would remove; change nothing')
    .addOption(jsonOption())
    .addHelpText('after', examples('vmhub retention apply --dry-run', 'vmhub retention apply --image ubuntu-app'))
    .action(async (opts: { image?: string; dryRun?: boolean; json?: boolean }) => {
      const image = opts.image === undefined ? undefined : validateImageName(opts.image, '--image');
      const result = opts.dryRun ? await preview({ image }, deps) : await run({ image }, deps);
      print(deps.io, Boolean(opts.json), result, () => renderText(result));
      process.exitCode = exitCode(result);
    });
}

/** An image named must be in the catalog and have a policy: a typo would otherwise retire nothing, silently. */
async function requirePolicy(catalog: Catalog, image: string): Promise<void> {
  await requireKnownImage(catalog, image, 'a retention policy');
  if (!(await catalog.retention.get(image))) {
    throw new VmhubError(
      'InvalidInput',
      `${image} has no retention policy; set one with \`vmhub retention set ${image} --keep <n>\``,
    );
  }
}
