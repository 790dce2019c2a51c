import type { Command } from 'commander';
import type { DeployCounts, DeployInput, DeployResult, DeployResultRow } from '../shared/deploy-input';
import { deployHeadline, deployIncomplete, resultTable, startDeploy } from './operations';
import { capacityShortfall, resourcesOf } from '../deploy/placement';
import { deployableVersion, parseRef, parseSddcList, registeredSddcs, requireAgents, requireControlWorkers } from './checks';
import { examples, jsonOption, requiredOption } from './command';
import type { CliDeps } from './deps';
import type { SddcSelection } from '../shared/names';
import { print, processIo } from './output';
import { followDeploy } from './progress';
import * as dryRun from './deploy-preview';

export interface DeployOptions {
  image: string;
  /** A version, `latest` (the highest available release that is not deprecated) or `latest-pre` (pre-releases count). */
  version: string;
  to: SddcSelection;
  force: boolean;
  /** Deploy nowhere unless every SDDC the version fits has a live agent; else such an SDDC is skipped. */
  allOrNothing?: boolean;
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

export function register(program: Command, deps: CliDeps): void {
  program
    .command('deploy')
    .description(
      'deploy <image>@<version|latest|latest-pre> to SDDCs; exits 2 when some SDDC did not end deployed or already present',
    )
    .argument(
      '<ref>',
      'image@version, image@latest (the highest available release that is not deprecated) or image@latest-pre (pre-releases count)',
    )
    .addOption(requiredOption('--to <sddcs>', 'comma-separated registered SDDC names, or "all"'))
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
      ),
    )
    .action(
      async (
        ref: string,
        opts: { to: string; force?: boolean; allOrNothing?: boolean; wait: boolean; dryRun?: boolean; json?: boolean },
      ) => {
        const { image, version } = parseRef(ref);
        const to = parseSddcList(opts.to, '--to');
        const allOrNothing = Boolean(opts.allOrNothing);
        const options: DeployOptions = { image, version, to, force: Boolean(opts.force), allOrNothing, wait: opts.wait };
        if (opts.dryRun) {
          const preview = await dryRun.preview(options, deps);
          print(deps.io, Boolean(opts.json), preview, () => dryRun.renderPreview(preview));
          return;
        }
        const result = await run(options, deps);
        print(deps.io, Boolean(opts.json), result, () => renderText(result));
        process.exitCode = exitCode(result);
      },
    );
}
