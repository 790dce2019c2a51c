import type { Command } from 'commander';
import type { RetireResult } from '../shared/lifecycle-input';
import { parseRef } from './checks';
import { requireWorker, startRetire } from './operations';
import type { CliDeps } from './deps';
import { print } from './output';

export interface RetireOptions {
  image: string;
  version: string;
}

export type RetireCliResult = RetireResult & { workflowId: string };

/**
 * Runs RetireImage and waits for it. Its workflow ID is `retire:<image>:<version>`: a retire of the
 * version still running is joined rather than started twice, and a version already retired starts no run:
 * the answer names the run that retired it.
 */
export async function run(options: RetireOptions, deps: CliDeps): Promise<RetireCliResult> {
  const client = await deps.temporal();
  await requireWorker(client, deps.config);
  const ref = { image: options.image, version: options.version };
  const started = await startRetire(client, deps.config, await deps.catalog(), ref);
  if ('retiredBy' in started)
    return { workflowId: started.retiredBy, ...ref, status: 'already-retired', sddcs: [], blobsRemoved: [] };
  const result = (await started.handle.result()) as RetireResult;
  return { workflowId: started.handle.workflowId, ...result };
}

export function renderText(r: RetireCliResult): string[] {
  const ref = `${r.image}@${r.version}`;
  if (r.status === 'already-retired') return [`${ref} was retired already by ${r.workflowId}; nothing to do`];
  return [
    `retired ${ref}  (workflow ${r.workflowId})`,
    `blobs    removed from ${r.blobsRemoved.join(', ') || 'nowhere (already gone)'}`,
    ...r.sddcs.map(
      (s) =>
        `sddc     ${s.sddc.padEnd(14)} ${s.files.length} files removed${s.libraryItem ? `, library item ${s.libraryItem} deleted` : ''}`,
    ),
  ];
}

export function register(program: Command, deps: CliDeps): void {
  program
    .command('retire')
    .description(
      'retire a version: remove its blob from every storage location and its copies from every SDDC, leaving a tombstone in the catalog',
    )
    .argument('<ref>', 'image@version')
    .option('--json', 'print one JSON document on stdout')
    .addHelpText(
      'after',
      '\nRefused (DeployRunning) while a deploy of the version runs. Running it again finishes a retire that stopped.\n\nExample:\n  vmhub retire ubuntu-app@1.2.0',
    )
    .action(async (ref: string, opts: { json?: boolean }) => {
      const result = await run(parseRef(ref, false), deps);
      print(deps.io, Boolean(opts.json), result, () => renderText(result));
    });
}
