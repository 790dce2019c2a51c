import type { Command } from 'commander';
import type { Catalog } from '../catalog/catalog';
import type { RetireDeps } from '../lifecycle/retire';
import { previewRetire, refusalError, type RetirePreview } from '../lifecycle/retire-preview';
import type { RetireResult } from '../shared/lifecycle-input';
import { formatBytes, plural } from '../shared/units';
import { loadTopology } from '../topology/topology';
import { parseRef } from './checks';
import { examples, jsonOption } from './command';
import { confirm } from './confirm';
import { requireWorker, startRetire } from './operations';
import type { CliDeps } from './deps';
import { print, processIo, table } from './output';
import { loadTemporal } from './services';

export interface RetireOptions {
  image: string;
  version: string;
  /** Go ahead without asking (scripts); without it a terminal asks, and anything else is refused. */
  yes: boolean;
}

export type RetireCliResult = RetireResult & { workflowId: string };

export type RetirePreviewResult = RetirePreview & { dryRun: true };

/** What a retire's (and retention's) plan reads, from the CLI: the catalog, the Temporal server and the topology. */
export async function retireDeps(deps: CliDeps): Promise<RetireDeps & { catalog: Catalog }> {
  return {
    catalog: await deps.catalog(),
    temporal: loadTemporal().temporalView(await deps.temporal()),
    topology: loadTopology(deps.config.topologyPath),
  };
}

/**
 * Runs RetireImage and waits for it. Its workflow ID is `retire:<image>:<version>`: a retire of the
 * version still running is joined rather than started twice, and a version already retired starts no run:
 * the answer names the run that retired it. Unless `yes`, the operator confirms first.
 */
export async function run(options: RetireOptions, deps: CliDeps): Promise<RetireCliResult> {
  const client = await deps.temporal();
  await requireWorker(client, deps.config);
  if (!options.yes) await confirmRetire(await previewRetire(await retireDeps(deps), options), deps);
  const ref = { image: options.image, version: options.version };
  const started = await startRetire(client, deps.config, await deps.catalog(), ref);
  if ('retiredBy' in started)
    return { workflowId: started.retiredBy, ...ref, status: 'already-retired', sddcs: [], blobsRemoved: [] };
  const result = (await started.handle.result()) as RetireResult;
  return { workflowId: started.handle.workflowId, ...result };
}

/**
 * A retired version has nothing left to remove: only a retire that removes something asks. One the retire
 * would refuse now fails with that refusal instead: nobody is asked to confirm what cannot happen.
 */
async function confirmRetire(p: RetirePreview, deps: CliDeps): Promise<void> {
  if (p.status === 'retired') return;
  if (p.refusals.length > 0) throw refusalError(p.refusals[0]);
  const ref = `${p.image}@${p.version}`;
  const where = `${plural(p.sddcs.length, 'SDDC')} and ${plural(p.storage.length, 'storage location')}`;
  await confirm(
    deps.io ?? processIo,
    `retire ${ref} from ${where}?`,
    `retiring ${ref} removes it from ${where} and cannot be undone; nobody can confirm here (not a terminal): pass --yes to retire it (\`vmhub retire ${ref} --yes\`), or --dry-run to see what it would remove`,
  );
}

/** What the retire would remove, and what would refuse it; nothing is changed. */
export async function preview(options: Pick<RetireOptions, 'image' | 'version'>, deps: CliDeps): Promise<RetirePreviewResult> {
  return { dryRun: true, ...(await previewRetire(await retireDeps(deps), options)) };
}

export function renderText(r: RetireCliResult): string[] {
  const ref = `${r.image}@${r.version}`;
  if (r.status === 'already-retired') return [`${ref} was retired already by ${r.workflowId}; nothing to do`];
  return [
    `retired ${ref}  (workflow ${r.workflowId})`,
    `blobs    removed from ${r.blobsRemoved.join(', ') || 'nowhere (already gone)'}`,
    ...r.sddcs.map(
      (s) =>
        `sddc     ${s.sddc.padEnd(14)} ${plural(s.files.length, 'file')} removed${s.libraryItem ? `, library item ${s.libraryItem} deleted` : ''}`,
    ),
  ];
}

/** A preview's lines: the headline, the SDDC copies, the blobs and what would refuse the retire now. */
export function renderPreview(p: RetirePreview): string[] {
  const ref = `${p.image}@${p.version}`;
  if (p.status === 'retired') return [`${ref} is retired already: a retire would remove nothing`];
  const lines = [
    `retiring ${ref} (${p.status}, ${formatBytes(p.sizeBytes)}) would remove ${plural(p.sddcs.length, 'SDDC copy', 'SDDC copies')} (${formatBytes(p.bytes.sddcs)}) and ${plural(p.storage.length, 'blob')} (${formatBytes(p.bytes.storage)}); nothing was changed`,
  ];
  if (p.sddcs.length > 0) {
    lines.push(
      ...table(
        ['SDDC', 'DATA CENTER', 'SIZE', 'COPY'],
        p.sddcs.map((s) => [s.sddc, s.dataCenter, formatBytes(s.bytes), s.where]),
      ),
    );
  }
  if (p.storage.length > 0) {
    lines.push(
      ...table(
        ['STORAGE', 'DATA CENTER', 'ROLE', 'SIZE', 'BLOB'],
        p.storage.map((b) => [
          b.location,
          b.dataCenter,
          b.replica ? `replica (${b.replica})` : b.role,
          formatBytes(b.bytes),
          b.blob,
        ]),
      ),
    );
  }
  lines.push(...p.refusals.map((r) => `a retire now would be refused: ${r}`));
  return lines;
}

export function register(program: Command, deps: CliDeps): void {
  program
    .command('retire')
    .description(
      'retire a version: remove its blob from every storage location and its copies from every SDDC, leaving a tombstone in the catalog',
    )
    .argument('<ref>', 'image@version')
    .option('--dry-run', 'list what would be removed (SDDC copies, library items, blobs, bytes) and change nothing')
    .option('-y, --yes', 'retire without asking (needed where stdin or stdout is not a terminal)')
    .addOption(jsonOption())
    .addHelpText(
      'after',
      `\nOn a terminal it asks first; elsewhere it needs --yes. Refused (DeployRunning) while a deploy of the version runs. Running it again finishes a retire that stopped.\n${examples(
        'vmhub retire ubuntu-app@1.2.0 --dry-run',
        'vmhub retire ubuntu-app@1.2.0 --yes',
      )}`,
    )
    .action(async (ref: string, opts: { dryRun?: boolean; yes?: boolean; json?: boolean }) => {
      const target = parseRef(ref, false);
      if (opts.dryRun) {
        const result = await preview(target, deps);
        print(deps.io, Boolean(opts.json), result, () => renderPreview(result));
        return;
      }
      const result = await run({ ...target, yes: Boolean(opts.yes) }, deps);
      print(deps.io, Boolean(opts.json), result, () => renderText(result));
    });
}
