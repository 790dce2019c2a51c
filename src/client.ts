import { Command, Option } from 'commander';
import { MultiBar, Presets, SingleBar } from 'cli-progress';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { Catalog, type Requirements, type VersionOverlap } from './catalog/catalog';
import { loadConfig, type Config } from './config';
import type { DeployInput, DeployProgress, DeployResult } from './deploy/input';
import { validateSddcName } from './names';
import { describePlacement, targetFromOptions, type TargetOptions } from './sddc/target';
import {
  cancelAndReport,
  deployIncomplete,
  deployLines,
  deployOutcome,
  describeFailure,
  publishLine,
  requireWorker,
  resultTable,
  sddcProgress,
  startDeploy,
  startPublish,
} from './operations';
import type { PublishInput, PublishProgress, PublishResult } from './publish/input';
import { connectClient } from './temporal';
import { loadTopology } from './topology/topology';
import { formatBytes, parseSize } from './units';
import { assertDeployable, lifecycleLines, lifecycleMark } from './lifecycle/deprecation';
import type { CliDeps } from './cli/deps';
import * as deprecateCommand from './cli/deprecate';
import * as retireCommand from './cli/retire';
import * as retentionCommand from './cli/retention';
import * as verifyCommand from './cli/verify';
import * as schedulesCommand from './cli/schedules';

/**
 * The vmhub admin CLI (SPEC §6). Every command takes --json: then stdout carries exactly one JSON
 * document. On a terminal, waiting commands draw progress on stderr. Failures: one line on stderr, exit 1.
 */
interface Io {
  json: boolean;
  tty: boolean;
  out(text: string): void;
}

function io(json: boolean): Io {
  return { json, tty: Boolean(process.stderr.isTTY) && !json, out: (text) => process.stdout.write(`${text}\n`) };
}

/**
 * A line for a terminal: names, products and descriptions come from images, which could carry escape
 * sequences that rewrite the screen; every control character is shown as `?`. (JSON escapes them itself.)
 */
export function printable(line: string): string {
  return line.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
}

function emit(o: Io, data: unknown, human: () => string[]): void {
  if (o.json) o.out(JSON.stringify(data, null, 2));
  else for (const line of human()) o.out(printable(line));
}

async function withClient<T>(fn: (client: Client, config: Config) => Promise<T>): Promise<T> {
  const config = loadConfig();
  const client = await connectClient(config.temporal);
  try {
    return await fn(client, config);
  } finally {
    await client.connection.close();
  }
}

async function withCatalog<T>(fn: (catalog: Catalog, config: Config) => Promise<T>): Promise<T> {
  const config = loadConfig();
  const catalog = await Catalog.connect(config.mongodbUri);
  try {
    return await fn(catalog, config);
  } finally {
    await catalog.close();
  }
}

function parseRef(ref: string): { image: string; version: string } {
  const at = ref.lastIndexOf('@');
  if (at <= 0 || at === ref.length - 1) throw new Error(`"${ref}" is not <image>@<version>`);
  return { image: ref.slice(0, at), version: ref.slice(at + 1) };
}

/** `cpus=4,memory=8GiB,disk=100GiB` → requirements in CPUs, MiB and bytes. */
export function parseFits(text: string): Requirements {
  const req: Requirements = {};
  for (const part of text.split(',').filter(Boolean)) {
    const [key, value] = part.split('=');
    if (value === undefined) throw new Error(`--fits expects key=value pairs, got "${part}"`);
    if (key === 'cpus') req.cpus = Number(value);
    else if (key === 'memory') req.memoryMiB = Math.floor(parseSize(value) / 2 ** 20);
    else if (key === 'disk') req.diskBytes = parseSize(value);
    else throw new Error(`--fits knows cpus, memory and disk, not "${key}"`);
    if (key === 'cpus' && !Number.isInteger(req.cpus)) throw new Error(`cpus must be a whole number, got "${value}"`);
  }
  return req;
}

/** Follows a publish: a byte progress bar on a terminal, then the result. */
async function followPublish(handle: WorkflowHandle, o: Io): Promise<PublishResult> {
  const result = handle.result() as Promise<PublishResult>;
  if (!o.tty) return result;
  const bar = new SingleBar(
    { format: ' {bar} {percentage}% | {value}/{total} MiB | {rate} MiB/s | ETA {eta_formatted} | {phase}', hideCursor: true },
    Presets.shades_classic,
  );
  let started = false;
  // A refresh that fails leaves the bar as it was; the next one tries again.
  const refresh = async () => {
    const p = await handle.query<PublishProgress>('progress').catch(() => undefined);
    if (!p || p.bytesTotal === 0) return;
    const mib = (b: number) => Math.round(b / 2 ** 20);
    const elapsed = (Date.now() - Date.parse(p.startedAt)) / 1000;
    const payload = { phase: p.phase, rate: elapsed > 0 ? (mib(p.bytesStaged) / elapsed).toFixed(1) : '0' };
    if (!started) {
      bar.start(mib(p.bytesTotal), mib(p.bytesStaged), payload);
      started = true;
    } else bar.update(mib(p.bytesStaged), payload);
  };
  const timer = setInterval(() => void refresh().catch(() => undefined), 500);
  try {
    return await result;
  } finally {
    clearInterval(timer);
    if (started) bar.stop();
  }
}

/** Bytes each agent has on disk, from the heartbeats of the pending downloads. */
async function downloadedBytes(handle: WorkflowHandle): Promise<Map<string, number>> {
  const bytes = new Map<string, number>();
  const description = await handle.describe();
  for (const a of description.raw.pendingActivities ?? []) {
    const payload = a.heartbeatDetails?.payloads?.[0];
    if (!payload) continue;
    const d = defaultPayloadConverter.fromPayload<{ sddc?: string; bytesDone?: number }>(payload);
    if (d?.sddc) bytes.set(d.sddc, d.bytesDone ?? 0);
  }
  return bytes;
}

/** Follows a deployment: one bar per SDDC with its source and state on a terminal, then the result. */
async function followDeploy(handle: WorkflowHandle, o: Io): Promise<DeployResult> {
  const result = deployOutcome(handle);
  if (!o.tty) return result;
  const bars = new MultiBar(
    { format: ' {sddc} {bar} {percentage}% | {state} from {source}', hideCursor: true },
    Presets.shades_classic,
  );
  const rows = new Map<string, ReturnType<MultiBar['create']>>();
  // A refresh that fails leaves the bar as it was; the next one tries again.
  const refresh = async () => {
    const progress = await sddcProgress(handle);
    if (!progress) return;
    const onDisk = await downloadedBytes(handle).catch(() => new Map<string, number>());
    for (const s of Object.values(progress)) {
      const done = s.phase === 'done' ? s.bytesTotal : (onDisk.get(s.sddc) ?? s.bytesDone);
      const payload = { sddc: s.sddc.padEnd(12), state: s.status ?? s.phase, source: s.source ?? '-' };
      const bar = rows.get(s.sddc);
      if (bar) bar.update(done, payload);
      else rows.set(s.sddc, bars.create(Math.max(1, s.bytesTotal), done, payload));
    }
  };
  const timer = setInterval(() => void refresh().catch(() => undefined), 500);
  try {
    return await result;
  } finally {
    clearInterval(timer);
    bars.stop();
  }
}

/** What a delta deploy from the previous version would not fetch. */
function overlapLine(o: VersionOverlap): string {
  const percent = o.blockCount > 0 ? ((100 * o.sharedBlocks) / o.blockCount).toFixed(1) : '0.0';
  return `overlap    ${o.sharedBlocks} of ${o.blockCount} blocks (${percent} %) shared with ${o.previousVersion}`;
}

function versionRows(records: Awaited<ReturnType<Catalog['listVersions']>>): string[] {
  if (records.length === 0) return ['no versions'];
  return records.map((r) => {
    const res = r.metadata && 'resources' in r.metadata ? r.metadata.resources : undefined;
    const needs = res ? `${res.cpus} CPU, ${res.memoryMiB} MiB, ${formatBytes(res.diskBytes)} disk` : '';
    const mark = lifecycleMark(r, new Date());
    return `${`${r.image}@${r.version}`.padEnd(28)} ${r.status.padEnd(10)} ${r.format.padEnd(4)} ${formatBytes(r.sizeBytes).padStart(10)}  ${needs}${mark ? `  [${mark}]` : ''}`;
  });
}

export function buildProgram(): Command {
  const program = new Command('vmhub')
    .description('Publish VM images to Azure Blob Storage, catalog them, replicate them and deploy them to SDDCs.')
    .showHelpAfterError()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  const json = () => new Option('--json', 'print one JSON document on stdout');

  program
    .command('publish')
    .description('publish an image from the repository (a path under a repository root) or an http(s) URL')
    .argument('<source>')
    .requiredOption('--image <name>', 'image name')
    .option('--version <version>', 'semantic version; default: the version the image declares')
    .addOption(new Option('--format <format>', 'image format').choices(['ova', 'ovf', 'iso']))
    .option('--sha256 <hex>', "the image's expected SHA-256 (e.g. its vendor's checksum): other bytes fail and commit nothing")
    .option('--deploy <sddcs>', 'comma-separated SDDCs to deploy to once published')
    .option('--no-wait', 'start the workflow and print its ID')
    .addOption(json())
    .action(
      async (
        source: string,
        opts: {
          image: string;
          version?: string;
          format?: PublishInput['format'];
          sha256?: string;
          deploy?: string;
          wait: boolean;
          json?: boolean;
        },
      ) => {
        const o = io(Boolean(opts.json));
        const input: PublishInput = {
          source,
          image: opts.image,
          version: opts.version,
          format: opts.format,
          sha256: opts.sha256,
          deployTo: opts.deploy?.split(',').filter(Boolean),
        };
        await withClient(async (client, config) => {
          const handle = await startPublish(client, config, input);
          if (!opts.wait) return emit(o, { workflowId: handle.workflowId }, () => [handle.workflowId]);
          const r = await followPublish(handle, o);
          emit(o, { workflowId: handle.workflowId, ...r }, () => [
            `published ${r.image}@${r.version} (${r.format}, ${formatBytes(r.sizeBytes)}, ${r.blockCount} blocks of ${formatBytes(r.blockSize)})`,
            `sha256   ${r.sha256}`,
            `blob     ${r.location.storage}/${r.location.container}/${r.location.blob}`,
            `workflow ${handle.workflowId}`,
            ...(r.deploy ? [`deploy   ${r.deploy.workflowId}`, ...resultTable({ ...r, ...r.deploy })] : []),
          ]);
          if (r.deploy && deployIncomplete({ ...r, results: r.deploy.results })) process.exitCode = 2;
        });
      },
    );

  program
    .command('deploy')
    .description('deploy <image>@<version|latest> to SDDCs')
    .argument('<ref>', 'image@version or image@latest')
    .requiredOption('--to <sddcs>', 'comma-separated SDDC names, or "all"')
    .option('--no-wait', 'start the workflow and print its ID')
    .option('--force', 'deploy a deprecated version even past its end of life')
    .addOption(json())
    .action(async (ref: string, opts: { to: string; wait: boolean; force?: boolean; json?: boolean }) => {
      const o = io(Boolean(opts.json));
      const { image, version } = parseRef(ref);
      const input: DeployInput = { image, version, sddcs: opts.to === 'all' ? 'all' : opts.to.split(',').filter(Boolean) };
      if (opts.force) input.force = true;
      // Refused here already, before a workflow starts; the deploy's planning checks again.
      const record = version === 'latest' ? null : await withCatalog((catalog) => catalog.getVersion(image, version));
      if (record) assertDeployable(record, new Date(), opts.force);
      await withClient(async (client, config) => {
        await requireWorker(client, config);
        const handle = await startDeploy(client, config, input);
        if (!opts.wait) return emit(o, { workflowId: handle.workflowId }, () => [handle.workflowId]);
        const r = await followDeploy(handle, o);
        const incomplete = deployIncomplete(r);
        emit(o, { workflowId: handle.workflowId, ...r }, () => [
          `${incomplete ? 'deploy incomplete:' : 'deployed'} ${r.image}@${r.version}  (workflow ${handle.workflowId})`,
          ...resultTable(r),
        ]);
        if (incomplete) process.exitCode = 2;
      });
    });

  program
    .command('status')
    .description('state and progress of a workflow')
    .argument('<workflow-id>')
    .addOption(json())
    .action(async (workflowId: string, opts: { json?: boolean }) => {
      const o = io(Boolean(opts.json));
      await withClient(async (client) => {
        const handle = client.workflow.getHandle(workflowId);
        const d = await handle.describe();
        const progress = await handle.query<PublishProgress | DeployProgress>('progress').catch(() => undefined);
        const sddcs = progress && !('phase' in progress) ? await sddcProgress(handle) : undefined;
        let result: unknown;
        let failure: string | undefined;
        if (d.status.name === 'COMPLETED') result = await handle.result();
        if (d.status.name === 'FAILED') failure = await handle.result().then(() => undefined, describeFailure);
        const data = {
          workflowId,
          type: d.type,
          status: d.status.name,
          startTime: d.startTime,
          closeTime: d.closeTime,
          progress,
          result,
          failure,
        };
        emit(o, data, () => [
          `${d.type} ${workflowId}: ${d.status.name}`,
          ...(progress && 'phase' in progress ? [publishLine(progress as PublishProgress)] : sddcs ? deployLines(sddcs) : []),
          ...(failure ? [`failure: ${failure}`] : []),
        ]);
      });
    });

  program
    .command('images')
    .description('versions in the catalog')
    .option('--image <name>', 'only this image')
    .option('--fits <capacity>', 'only versions that fit, e.g. cpus=4,memory=8GiB,disk=100GiB')
    .option('--os <osType>', 'only versions with this guest OS type, e.g. ubuntu64Guest')
    .addOption(json())
    .action(async (opts: { image?: string; fits?: string; os?: string; json?: boolean }) => {
      const o = io(Boolean(opts.json));
      await withCatalog(async (catalog) => {
        // Filters combine: a version is listed only when it passes every one given.
        const records =
          opts.fits || opts.os
            ? await catalog.findAvailable({
                image: opts.image,
                fits: opts.fits ? parseFits(opts.fits) : undefined,
                osType: opts.os,
              })
            : await catalog.listVersions(opts.image);
        emit(o, records, () => versionRows(records));
      });
    });

  program
    .command('show')
    .description('one version: its record, metadata, replicas and deployments')
    .argument('<ref>', 'image@version or image@latest')
    .addOption(json())
    .action(async (ref: string, opts: { json?: boolean }) => {
      const o = io(Boolean(opts.json));
      const { image, version } = parseRef(ref);
      await withCatalog(async (catalog) => {
        const record = version === 'latest' ? await catalog.latest(image) : await catalog.getVersion(image, version);
        if (!record) throw new Error(`UnknownImage: ${image}@${version} is not in the catalog`);
        const deployments = await catalog.deploymentsOf(record.image, record.version);
        const m = record.metadata;
        emit(o, { ...record, deployments }, () => [
          `${record.image}@${record.version}  ${record.status}  ${record.format}  ${formatBytes(record.sizeBytes)}`,
          `sha256     ${record.sha256 ?? '-'}`,
          `blob       ${record.location.storage}/${record.location.container}/${record.location.blob}`,
          ...lifecycleLines(record, new Date()),
          ...(record.overlap ? [overlapLine(record.overlap)] : []),
          ...(m?.kind === 'ova'
            ? [
                `product    ${[m.vendor, m.product, m.fullVersion ?? m.version].filter(Boolean).join(' ')}`,
                `os         ${[m.os?.osType, m.os?.description].filter(Boolean).join(' — ')}`,
                `hardware   ${m.hardwareFamily.join(' ')} ${m.firmware}, ${m.cpus} CPU, ${m.memoryMiB} MiB`,
                ...m.disks.map(
                  (d) =>
                    `disk       ${d.diskId} ${d.capacityBytes !== undefined ? formatBytes(d.capacityBytes) : d.capacityUnresolved}`,
                ),
              ]
            : m?.kind === 'iso'
              ? [`volume     ${m.volumeId}${m.bootable ? ' (bootable)' : ''}`]
              : []),
          ...record.replicas.map((r) => `replica    ${r.location} ${r.status}${r.reason ? ` (${r.reason})` : ''}`),
          ...deployments.map(
            (d) =>
              `deployed   ${d.sddc} ${d.status} from ${d.source ?? '-'} ${d.target ? describePlacement(d.target) : (d.path ?? d.error ?? '')}` +
              (d.instantiated
                ? `, instantiated as ${d.instantiated.vm} (${d.instantiated.cpus} CPU, ${d.instantiated.memoryMiB} MiB) and removed`
                : ''),
          ),
        ]);
      });
    });

  const sddc = program.command('sddc').description('the SDDCs images are deployed to');
  sddc
    .command('add')
    .argument('<name>')
    .requiredOption('--dc <dataCenter>', 'the data center it is in')
    .option('--cpus <n>', 'CPUs available', '64')
    .option('--memory <size>', 'memory available', '512GiB')
    .option('--disk <size>', 'disk available', '4TiB')
    .option('--task-queue <queue>', "its agent's task queue (default sddc-<name>)")
    .option('--vcenter <url>', "deploy into this vCenter's content library (default: a directory of the agent's datastore)")
    .option('--library <name>', 'the content library, created when missing', 'vmhub')
    .option('--datastore <name>', "a new library's datastore (default: the vCenter's first)")
    .option('--resource-pool <name>', 'where instantiate checks deploy (default: the first cluster)')
    .option('--username-env <VAR>', "the agent's variable holding the vCenter user (default VMHUB_VC_<NAME>_USERNAME)")
    .option('--password-env <VAR>', "the agent's variable holding the vCenter password (default VMHUB_VC_<NAME>_PASSWORD)")
    .option('--insecure-tls', "accept the vCenter's certificate without a CA (simulators, labs)")
    .option('--instantiate', 'check every deployment by making a VM from the item and removing it')
    .addOption(json())
    .action(
      async (
        name: string,
        opts: TargetOptions & { dc: string; cpus: string; memory: string; disk: string; taskQueue?: string; json?: boolean },
      ) => {
        const o = io(Boolean(opts.json));
        validateSddcName(name);
        const { vcenter, library, datastore, resourcePool, usernameEnv, passwordEnv, insecureTls, instantiate } = opts;
        // --library has a default, so it alone does not ask for a content library.
        const target = targetFromOptions(name, {
          vcenter,
          library: vcenter ? library : undefined,
          datastore,
          resourcePool,
          usernameEnv,
          passwordEnv,
          insecureTls,
          instantiate,
        });
        await withCatalog(async (catalog, config) => {
          const topology = loadTopology(config.topologyPath);
          if (!topology.dataCenters.some((d) => d.id === opts.dc)) {
            throw new Error(
              `unknown data center ${opts.dc}; the topology has ${topology.dataCenters.map((d) => d.id).join(', ')}`,
            );
          }
          const record = await catalog.addSddc({
            name,
            dataCenter: opts.dc,
            taskQueue: opts.taskQueue ?? `sddc-${name}`,
            capacity: {
              cpus: Number(opts.cpus),
              memoryMiB: Math.floor(parseSize(opts.memory) / 2 ** 20),
              diskGiB: Math.floor(parseSize(opts.disk) / 2 ** 30),
            },
            target,
          });
          emit(o, record, () => [
            `registered ${record.name} in ${record.dataCenter} (task queue ${record.taskQueue})`,
            target.kind === 'content-library'
              ? `deploys into library ${target.library} on ${target.vcenter}; its agent logs in with $${target.usernameEnv} and $${target.passwordEnv}`
              : "deploys into a directory of its agent's datastore",
          ]);
        });
      },
    );
  sddc
    .command('list')
    .addOption(json())
    .action(async (opts: { json?: boolean }) => {
      const o = io(Boolean(opts.json));
      await withCatalog(async (catalog) => {
        const list = await catalog.listSddcs();
        emit(o, list, () =>
          list.length === 0
            ? ['no SDDCs registered']
            : list.map(
                (s) =>
                  `${s.name.padEnd(14)} ${s.dataCenter.padEnd(10)} ${s.taskQueue.padEnd(20)} ${s.capacity.cpus} CPU, ${s.capacity.memoryMiB} MiB, ${s.capacity.diskGiB} GiB`,
              ),
        );
      });
    });
  sddc
    .command('remove')
    .argument('<name>')
    .addOption(json())
    .action(async (name: string, opts: { json?: boolean }) => {
      const o = io(Boolean(opts.json));
      await withCatalog(async (catalog) => {
        if (!(await catalog.removeSddc(name))) throw new Error(`UnknownSddc: ${name} is not registered`);
        emit(o, { removed: name }, () => [`removed ${name}`]);
      });
    });

  program
    .command('cancel')
    .description('cancel a running workflow, wait for it to stop, and report what it cleaned up')
    .argument('<workflow-id>')
    .addOption(json())
    .action(async (workflowId: string, opts: { json?: boolean }) => {
      const o = io(Boolean(opts.json));
      await withClient(async (client) => {
        const report = await cancelAndReport(client, workflowId);
        emit(o, report, () => [
          `${workflowId}: ${report.status}`,
          ...(report.cleanup.length > 0 ? report.cleanup.map((c) => `  cleaned up: ${c}`) : ['  nothing to clean up']),
        ]);
      });
    });

  // The lifecycle commands, one module each (src/cli/), until the CLI split moves every command there.
  for (const command of [deprecateCommand, retireCommand, retentionCommand, verifyCommand, schedulesCommand]) {
    command.register(program, cliDeps);
  }

  return program;
}

/** The services of src/cli/ commands, each connected on first use and closed by main. */
let temporalClient: Promise<Client> | undefined;
let catalogClient: Promise<Catalog> | undefined;
const cliDeps: CliDeps = {
  get config() {
    return loadConfig();
  },
  temporal: () => (temporalClient ??= connectClient(loadConfig().temporal)),
  catalog: () => (catalogClient ??= Catalog.connect(loadConfig().mongodbUri)),
};

export async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (err) {
    process.stderr.write(`vmhub: ${describeFailure(err)}\n`);
    process.exitCode = 1;
  } finally {
    await Promise.allSettled([temporalClient?.then((c) => c.connection.close()), catalogClient?.then((c) => c.close())]);
  }
}

if (require.main === module) void main(process.argv);
