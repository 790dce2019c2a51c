import type { Command } from 'commander';
import type { DeployCounts, DeployGate, DeployInput, DeployResult, DeployResultRow } from '../shared/deploy-input';
import { deployHeadline, deployIncomplete, resultTable, startDeploy } from './operations';
import { capacityShortfall, resourcesOf } from '../deploy/placement';
import { deployableVersion, parseRef, parseSddcList, registeredSddcs, requireAgents, requireControlWorkers } from './checks';
import { examples, jsonOption } from './command';
import type { CliDeps } from './deps';
import type { SddcSelection } from '../shared/names';
import { print, processIo } from './output';
import { followDeploy } from './progress';
import * as dryRun from './deploy-preview';
import { renderRetryPlan, retryPlan, type RetryPlan } from './deploy-retry';
import { CliError } from './errors';

export interface DeployOptions {
  image: string;
  /** A version, `latest` (the highest available release that is not deprecated) or `latest-pre` (pre-releases count). */
  version: string;
  to: SddcSelection;
  force: boolean;
  /** Deploy nowhere unless every SDDC the version fits has a live agent; else such an SDDC is skipped. */
  allOrNothing?: boolean;
  /** For content-library SDDCs: deploy a VM from the item and check it (kept from the run `--retry` retries). */
  instantiate?: boolean;
  /** A rollout wave's channel and gate, kept from the wave's deploy `--retry` retries. */
  channel?: string;
  gate?: DeployGate;
  wait: boolean;
}

export type DeployCliResult = { workflowId: string } & (
  | { waited: false }
  | { waited: true; image: string; version: string; results: DeployResultRow[]; counts: DeployCounts | null; incomplete: boolean }
);

/**
 * Checks everything it can before the workflow starts: the SDDCs are registered, the version exists and
 * may be deployed, the control worker polled in the last 75 s, and so did the agent of some SDDC it fits
 * (of every one, all-or-nothing).
 */
export async function prepare(options: DeployOptions, deps: CliDeps): Promise<DeployInput> {
  const catalog = await deps.catalog();
  const sddcs = await registeredSddcs(catalog, options.to, '--to');
  const record = await deployableVersion(catalog, options.image, options.version, options.force);
  const client = await deps.temporal();
  await requireControlWorkers(client, deps.config);
  // An SDDC the version does not fit is skipped by the deploy: it needs no agent.
  await requireAgents(
    client,
    sddcs.filter((s) => capacityShortfall(resourcesOf(record), s.capacity) === undefined),
    options.allOrNothing,
  );
  // `latest` and `latest-pre` are resolved here, so the deploy ships the version that was checked.
  return {
    image: options.image,
    version: record.version,
    sddcs: options.to,
    ...(options.instantiate ? { instantiate: true } : {}),
    ...(options.channel ? { channel: options.channel } : {}),
    ...(options.gate ? { gate: options.gate } : {}),
    ...(options.force ? { force: true } : {}),
    ...(options.allOrNothing ? { allOrNothing: true } : {}),
  };
}

export async function run(options: DeployOptions, deps: CliDeps): Promise<DeployCliResult> {
  const input = await prepare(options, deps);
  const handle = await startDeploy(await deps.temporal(), deps.config, input);
  if (!options.wait) return { workflowId: handle.workflowId, waited: false };
  return deployResult(handle.workflowId, await followDeploy(handle, deps.io ?? processIo));
}

export function deployResult(workflowId: string, r: DeployResult): DeployCliResult {
  return {
    workflowId,
    waited: true,
    image: r.image,
    version: r.version,
    results: r.results,
    counts: r.counts ?? null,
    incomplete: deployIncomplete(r),
  };
}

export function renderText(r: DeployCliResult): string[] {
  if (!r.waited) return [`started ${r.workflowId}; follow it with \`vmhub wait ${r.workflowId}\``];
  const result = { ...r, counts: r.counts ?? undefined };
  return [`${deployHeadline(result)}  (workflow ${r.workflowId})`, ...resultTable(result)];
}

/** 0, or 2 when some SDDC ended neither deployed nor already present. */
export function exitCode(r: DeployCliResult): number {
  return r.waited && r.incomplete ? 2 : 0;
}

/** `deploy --retry <run>`: the plan, and the deploy it started (none on a dry run or with nothing to retry). */
export type RetryCliResult = RetryPlan & { dryRun: boolean; deploy: DeployCliResult | null };

export interface RetryOptions {
  run: string;
  dryRun: boolean;
  wait: boolean;
  /** Added to the run's own options: a version deprecated past its end of life since needs --force. */
  force: boolean;
  allOrNothing: boolean;
}

/**
 * Deploys the version a finished run resolved again to exactly the SDDCs it did not deploy for a reason
 * that can change, with the run's own options; checked and followed as any deploy is.
 */
export async function retry(options: RetryOptions, deps: CliDeps): Promise<RetryCliResult> {
  const plan = await retryPlan(options.run, deps);
  if (options.dryRun || plan.retried.length === 0) return { ...plan, dryRun: options.dryRun, deploy: null };
  const deploy = await run(
    {
      image: plan.image,
      version: plan.version,
      to: plan.retried.map((r) => r.sddc),
      force: options.force || plan.options.force === true,
      allOrNothing: options.allOrNothing || plan.options.allOrNothing === true,
      instantiate: plan.options.instantiate === true,
      ...(plan.options.channel ? { channel: plan.options.channel } : {}),
      ...(plan.options.gate ? { gate: plan.options.gate } : {}),
      wait: options.wait,
    },
    deps,
  );
  return { ...plan, dryRun: false, deploy };
}

export function renderRetry(r: RetryCliResult): string[] {
  return [...renderRetryPlan(r, r.dryRun), ...(r.deploy ? renderText(r.deploy) : [])];
}

interface DeployFlags {
  to?: string;
  retry?: string;
  force?: boolean;
  allOrNothing?: boolean;
  wait: boolean;
  dryRun?: boolean;
  json?: boolean;
}

export function register(program: Command, deps: CliDeps): void {
  program
    .command('deploy')
    .description(
      'deploy <image>@<version|latest|latest-pre> to SDDCs, or retry what a deploy did not deploy; exits 2 when some SDDC did not end deployed or already present',
    )
    .argument(
      '[ref]',
      'image@version, image@latest (the highest available release that is not deprecated) or image@latest-pre (pre-releases count)',
    )
    .option('--to <sddcs>', 'comma-separated registered SDDC names, or "all" (required unless --retry)')
    .option(
      '--retry <run>',
      "a finished deploy's workflow ID: deploy its version again, with its options, to the SDDCs it failed or skipped for a reason that can change",
    )
    .option('--force', 'deploy a deprecated version even past its end of life')
    .option(
      '--all-or-nothing',
      'deploy nowhere unless the agent of every SDDC is running (without it, an SDDC with no agent is skipped)',
    )
    .option('--no-wait', 'start the workflow, print its ID and return')
    .option(
      '--dry-run',
      'show per SDDC what it would do (deploy from where, bytes to move, already present, skipped) and start nothing',
    )
    .addOption(jsonOption())
    .addHelpText(
      'after',
      examples(
        'vmhub deploy ubuntu-app@2.3.1 --to east-1,west-1',
        'vmhub deploy ubuntu-app@latest --to all --no-wait',
        'vmhub deploy ubuntu-app@latest-pre --to lab-1',
        'vmhub deploy ubuntu-app@2.3.1 --to all --all-or-nothing',
        'vmhub deploy ubuntu-app@2.3.1 --to all --dry-run',
        'vmhub deploy --retry deploy:ubuntu-app:2.3.1:20260101T120000000Z-a1b2c3',
      ),
    )
    .action(async (ref: string | undefined, opts: DeployFlags) => {
      const json = Boolean(opts.json);
      if (opts.retry !== undefined) {
        if (ref !== undefined || opts.to !== undefined) {
          throw new CliError(
            'UsageError',
            "--retry deploys the run's own version to its own SDDCs: give neither image@version nor --to",
          );
        }
        const flags = { force: Boolean(opts.force), allOrNothing: Boolean(opts.allOrNothing) };
        const result = await retry({ run: opts.retry, dryRun: Boolean(opts.dryRun), wait: opts.wait, ...flags }, deps);
        print(deps.io, json, result, () => renderRetry(result));
        process.exitCode = result.deploy ? exitCode(result.deploy) : 0;
        return;
      }
      if (ref === undefined) throw new CliError('UsageError', "missing required argument 'ref' (or --retry <run>)");
      if (opts.to === undefined) throw new CliError('UsageError', "required option '--to <sddcs>' not specified");
      const { image, version } = parseRef(ref);
      const to = parseSddcList(opts.to, '--to');
      const allOrNothing = Boolean(opts.allOrNothing);
      const options: DeployOptions = { image, version, to, force: Boolean(opts.force), allOrNothing, wait: opts.wait };
      if (opts.dryRun) {
        const preview = await dryRun.preview(options, deps);
        print(deps.io, json, preview, () => dryRun.renderPreview(preview));
        return;
      }
      const result = await run(options, deps);
      print(deps.io, json, result, () => renderText(result));
      process.exitCode = exitCode(result);
    });
}
