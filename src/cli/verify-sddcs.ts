import { randomUUID } from 'node:crypto';
import type { VerifySddcsInput, VerifySddcsResult } from '../shared/drift-input';
import { requireWorker } from './operations';
import type { CliDeps } from './deps';
import { plural } from '../shared/units';

export type VerifySddcsCliResult = VerifySddcsResult & { workflowId: string };

/** Runs VerifySddcs now (every SDDC, or those named), with or without repair, and waits for it. */
export async function run(options: Pick<VerifySddcsInput, 'sddcs' | 'repair'>, deps: CliDeps): Promise<VerifySddcsCliResult> {
  const client = await deps.temporal();
  await requireWorker(client, deps.config);
  const workflowId = `verify-sddcs:${options.sddcs?.join(',') ?? 'all'}:${randomUUID().slice(0, 8)}`;
  const result = (await client.workflow.execute('VerifySddcs', {
    args: [options],
    taskQueue: deps.config.taskQueue,
    workflowId,
    staticSummary: `Verify the copies on ${options.sddcs?.join(', ') ?? 'every SDDC'}${options.repair ? ', repairing drift' : ''}`,
  })) as VerifySddcsResult;
  return { workflowId, ...result };
}

export function renderText(r: VerifySddcsCliResult): string[] {
  const deferred = r.copiesDeferred > 0 ? `, ${r.copiesDeferred} left to hash on a later run` : '';
  return [
    `checked ${plural(r.copiesChecked, 'copy', 'copies')} on ${plural(r.sddcsChecked, 'SDDC')}, ${r.copiesHashed} hashed${deferred}  (workflow ${r.workflowId})`,
    r.findingsTotal === 0 ? 'every copy matches the catalog' : `${r.findingsTotal} found:`,
    ...r.findings.map(
      (f) =>
        `  ${`${f.image}@${f.version}`.padEnd(28)} ${f.sddc.padEnd(14)} ${f.kind.padEnd(16)} ${f.repaired === undefined ? '' : f.repaired ? 'repaired: ' : 'NOT repaired: '}${f.detail}`,
    ),
  ];
}
