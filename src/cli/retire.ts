import type { Command } from 'commander';
import { retireWorkflowId, type RetireResult } from '../shared/lifecycle-input';
import { parseRef } from './checks';
import { requireWorker } from './operations';
import type { CliDeps } from './deps';
import { print } from './output';
import { plural } from '../shared/units';

export interface RetireOptions {
  image: string;
  version: string;
}

export type RetireCliResult = RetireResult & { workflowId: string };

/**
 * Runs RetireImage and waits for it. Its workflow ID is `retire:<image>:<version>`: a retire of the
 * version still running is joined rather than started twice.
 */
export async function run(options: RetireOptions, deps: CliDeps): Promise<RetireCliResult> {
  const client = await deps.temporal();
  await requireWorker(client, deps.config);
  const workflowId = retireWorkflowId(options.image, options.version);
  const handle = await client.workflow.start('RetireImage', {
    args: [{ image: options.image, version: options.version }],
    taskQueue: deps.config.taskQueue,
    workflowId,
    workflowIdConflictPolicy: 'USE_EXISTING',
    staticSummary: `Retire ${options.image} ${options.version}`,
  });
  const result = (await handle.result()) as RetireResult;
  return { workflowId, ...result };
}

export function renderText(r: RetireCliResult): string[] {
  const ref = `${r.image}@${r.version}`;
  if (r.status === 'already-retired') return [`${ref} was retired already; nothing to do  (workflow ${r.workflowId})`];
  return [
    `retired ${ref}  (workflow ${r.workflowId})`,
    `blobs    removed from ${r.blobsRemoved.join(', ') || 'nowhere (already gone)'}`,
    ...r.sddcs.map(
      (s) =>
        `sddc     ${s.sddc.padEnd(14)} ${plural(s.files.length, 'file')} removed${s.libraryItem ? `, library item ${s.libraryItem} deleted` : ''}`,
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
