import { Option, type Command } from 'commander';
import { IMAGE_FORMATS, type ImageFormat } from '../shared/image-format';
import { deployHeadline, deployIncomplete, resultTable, startPublish } from './operations';
import type { DeployResultRow, DeployCounts } from '../shared/deploy-input';
import { publishWorkflowId, type PublishInput, type PublishResult } from '../shared/publish-input';
import type { ImageVersionRecord } from '../catalog/image-records';
import { formatBytes, plural } from '../shared/units';
import { isSemver, validateImageName, validateVersion, type SddcSelection } from '../shared/names';
import { resolveSource } from '../source/source';
import { resolveSourcePath } from '../source/source-path';
import { parseSddcList, registeredSddcs, requireAgents, requireControlWorkers } from './checks';
import { examples, jsonOption, requiredOption } from './command';
import type { CliDeps } from './deps';
import { errLine, print, processIo } from './output';
import { followPublish } from './progress';
import { VmhubError } from '../shared/errors';

/** The workflow's input as given on the command line, and whether to follow the run. */
export type PublishOptions = Omit<PublishInput, 'deployTo'> & {
  /** SDDCs to deploy to once published: names, or "all". */
  deploy?: SddcSelection;
  wait: boolean;
};

/**
 * `--no-wait`: only the workflow ID; else the publish's result, and its deploy's rows when it deployed.
 * `alreadyPublished`: the version held these bytes already. `sourceRead: false`: no run started, the catalog
 * holds the version with the SHA-256 --sha256 names (the source itself was not read), and
 * `workflowId` is the run that published it.
 */
export type PublishCliResult = { workflowId: string } & (
  | { waited: false }
  | ({ waited: true; alreadyPublished: boolean; sourceRead: boolean } & Omit<PublishResult, 'deploy'> & {
        deploy: { workflowId: string; results: DeployResultRow[]; counts: DeployCounts | null; incomplete: boolean } | null;
      })
);

/** Checks everything it can before the workflow starts: names, version, source, SDDCs, workers and agents. */
export async function prepare(options: PublishOptions, deps: CliDeps): Promise<PublishInput> {
  validateImageName(options.image, '--image');
  if (options.version !== undefined) validateVersion(options.version, '--version');
  if (options.sha256 !== undefined && !/^[0-9a-fA-F]{64}$/.test(options.sha256)) {
    throw new VmhubError(
      'InvalidInput',
      `--sha256 expects 64 hexadecimal digits (as sha256sum prints them), got "${options.sha256}"`,
    );
  }
  const roots = deps.config.repositoryRoots;
  const source = resolveSourcePath(options.source, roots, process.cwd());
  // The workflow's own check of the source, here so that a missing file or a bad URL starts nothing.
  resolveSource(source, roots);
  const input: PublishInput = {
    source,
    image: options.image,
    version: options.version,
    format: options.format,
    sha256: options.sha256,
  };
  if (options.deployAllOrNothing && !options.deploy) {
    throw new VmhubError(
      'InvalidInput',
      '--all-or-nothing applies to the deploy after the publish: give --deploy <sddcs> with it',
    );
  }
  const sddcs = options.deploy ? await registeredSddcs(await deps.catalog(), options.deploy, '--deploy') : [];
  const client = await deps.temporal();
  await requireControlWorkers(client, deps.config);
  await requireAgents(client, sddcs, options.deployAllOrNothing);
  if (options.deploy) input.deployTo = options.deploy;
  if (options.deployAllOrNothing) input.deployAllOrNothing = true;
  return input;
}

export async function run(options: PublishOptions, deps: CliDeps): Promise<PublishCliResult> {
  const input = await prepare(options, deps);
  const started = await startPublish(await deps.temporal(), deps.config, await deps.catalog(), input);
  if ('published' in started) return alreadyPublished(started.published);
  const { handle } = started;
  if (!options.wait) return { workflowId: handle.workflowId, waited: false };
  return publishResult(handle.workflowId, await followPublish(handle, deps.io ?? processIo));
}

/** The catalog's record as a publish's result, under the run that published it. */
function alreadyPublished(r: ImageVersionRecord): PublishCliResult {
  return {
    workflowId: r.owner?.workflowId ?? publishWorkflowId(r.image, r.version),
    waited: true,
    alreadyPublished: true,
    sourceRead: false,
    image: r.image,
    version: r.version,
    format: r.format,
    sizeBytes: r.sizeBytes,
    // planPublish answers from the catalog only for a record with its digest and metadata, as every available one has.
    sha256: r.sha256!,
    blockSize: r.blockSize,
    blockCount: r.blockCount,
    location: r.location,
    metadata: r.metadata!,
    deploy: null,
  };
}

export function publishResult(workflowId: string, r: PublishResult): PublishCliResult {
  const { deploy, ...published } = r;
  return {
    workflowId,
    waited: true,
    alreadyPublished: false,
    sourceRead: true,
    ...published,
    deploy: deploy ? { ...deploy, counts: deploy.counts ?? null, incomplete: deployIncomplete(deploy) } : null,
  };
}

export function renderText(r: PublishCliResult): string[] {
  if (!r.waited) return [`started ${r.workflowId}; follow it with \`vmhub wait ${r.workflowId}\``];
  const shape = `${r.format}, ${formatBytes(r.sizeBytes)}, ${plural(r.blockCount, 'block')} of ${formatBytes(r.blockSize)}`;
  const lines = [
    r.alreadyPublished
      ? `already published ${r.image}@${r.version} with ${r.sourceRead ? 'the same bytes' : 'the SHA-256 given (the source was not read)'}: unchanged (${shape})`
      : `published ${r.image}@${r.version} (${shape})`,
    `sha256    ${r.sha256}`,
    `blob      ${r.location.storage}/${r.location.container}/${r.location.blob}`,
    `workflow  ${r.workflowId}`,
  ];
  if (!r.deploy) return lines;
  const deploy = { image: r.image, version: r.version, results: r.deploy.results, counts: r.deploy.counts ?? undefined };
  return [...lines, '', `${deployHeadline(deploy)}  (workflow ${r.deploy.workflowId})`, ...resultTable(deploy)];
}

/**
 * A warning when the version published is not the one the image declares for itself (`--version 2.5.0` on
 * an OVF whose ProductSection says 2.2.0): both are named, and the publish stands, as the operator asked.
 */
export function versionWarning(r: PublishCliResult): string | undefined {
  if (!r.waited) return undefined;
  const declared = r.metadata && 'version' in r.metadata ? r.metadata.version : undefined;
  if (!isSemver(declared) || declared === r.version) return undefined;
  return `warning: ${r.image} was published as version ${r.version}, but the image declares version ${declared}`;
}

/** The version warning, on stderr (stdout may carry the JSON document). */
export function warnOfVersion(deps: CliDeps, r: PublishCliResult): void {
  const warning = versionWarning(r);
  if (warning) errLine(deps.io ?? processIo, `vmhub: ${warning}`);
}

/** 0, or 2 when a deploy it started left some SDDC neither deployed nor already present. */
export function exitCode(r: PublishCliResult): number {
  return r.waited && r.deploy?.incomplete ? 2 : 0;
}

export function register(program: Command, deps: CliDeps): void {
  program
    .command('publish')
    .description('publish an image from the repository (a path inside a repository root) or an http(s) URL')
    .argument('<source>', 'a file inside a repository root (absolute, relative to here, or to the first root), or a URL')
    .addOption(requiredOption('--image <name>', 'image name, e.g. ubuntu-app'))
    .option('--version <version>', 'MAJOR.MINOR.PATCH, e.g. 1.2.3; default: the version the image declares')
    .addOption(new Option('--format <format>', 'image format; default: from the file').choices([...IMAGE_FORMATS]))
    .option('--sha256 <hex>', "the image's expected SHA-256 (e.g. its vendor's checksum): other bytes fail and commit nothing")
    .option(
      '--deploy <sddcs>',
      'comma-separated SDDCs to deploy to once published, or "all" (one with no agent running is skipped)',
    )
    .option('--all-or-nothing', 'with --deploy: deploy nowhere unless the agent of every SDDC is running')
    .option('--no-wait', 'start the workflow, print its ID and return')
    .addOption(jsonOption())
    .addHelpText(
      'after',
      examples(
        'vmhub publish ubuntu-app.ova --image ubuntu-app --version 2.3.1',
        'vmhub publish ./images/photon.iso --image photon --version 5.0.0 --deploy east-1,west-1',
        'vmhub publish https://images.example.com/tools.ova --image tools --sha256 <hex> --no-wait',
      ),
    )
    .action(
      async (
        source: string,
        opts: {
          image: string;
          version?: string;
          format?: ImageFormat;
          sha256?: string;
          deploy?: string;
          allOrNothing?: boolean;
          wait: boolean;
          json?: boolean;
        },
      ) => {
        const result = await run(
          {
            source,
            image: opts.image,
            version: opts.version,
            format: opts.format,
            sha256: opts.sha256,
            deploy: opts.deploy === undefined ? undefined : parseSddcList(opts.deploy, '--deploy'),
            deployAllOrNothing: opts.allOrNothing,
            wait: opts.wait,
          },
          deps,
        );
        print(deps.io, Boolean(opts.json), result, () => renderText(result));
        warnOfVersion(deps, result);
        process.exitCode = exitCode(result);
      },
    );
}
