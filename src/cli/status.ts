import type { Command } from 'commander';
import type { VerifySddcsResult } from '../shared/drift-input';
import * as verifySddcs from './verify-sddcs';
import type { SddcProgress } from '../shared/deploy-input';
import { formatBytes } from '../shared/units';
import { examples, jsonOption } from './command';
import type { CliDeps } from './deps';
import { errorOf } from './errors';
import { print, statusWord, table } from './output';
import { readProgress } from './progress';
import { rowState } from './run-progress';
import { IMAGE_KEY, VERSION_KEY } from '../workflows/search-attributes';
import { idleQueues } from './checks';
import { findRun, type FoundRun } from './run-ref';

export interface StatusOptions {
  /** A workflow ID; `publish:<image>:<version>` and `retire:<image>:<version>` find the run behind the version (run-ref.ts). */
  workflowId: string;
}

/** Every field is present: null when it does not apply or is not known yet. */
export interface StatusResult {
  workflowId: string;
  type: string;
  /** Temporal's status, lowercase: running, completed, failed, cancelled, terminated, timed-out, continued-as-new. */
  status: string;
  /** The run when it is not its workflow ID's latest; null otherwise. */
  runId: string | null;
  /** The ID asked for and why this run is shown, when it is another run; null otherwise. */
  resolvedFrom: FoundRun['resolvedFrom'];
  /** The run's workflow task queue, and whether a worker polls it (null once the run has closed). */
  taskQueue: string;
  workerPolling: boolean | null;
  image: string | null;
  version: string | null;
  startTime: string | null;
  closeTime: string | null;
  progress: { phase: string; bytesDone: number; bytesTotal: number } | null;
  sddcs: Array<
    Pick<SddcProgress, 'sddc' | 'phase' | 'source' | 'bytesDone' | 'bytesTotal'> & {
      status: string | null;
      reason: string | null;
    }
  >;
  result: unknown;
  failure: { type: string; message: string } | null;
}

export async function run(options: StatusOptions, deps: CliDeps): Promise<StatusResult> {
  const found = await findRun(deps, options.workflowId);
  const { handle } = found;
  const d = await handle.describe();
  // A query needs a worker on the run's queue: without one it only times out, after 30 s.
  const polled = (await idleQueues(await deps.temporal(), [{ taskQueue: d.taskQueue, kind: 'workflow' }])).length === 0;
  const snapshot = polled ? await readProgress(handle, found.runId ?? undefined) : undefined;
  const status = statusWord(d.status.name);
  const outcome =
    status === 'completed' || status === 'failed'
      ? await handle.result().then(
          (result: unknown) => ({ result, failure: null }),
          (err: unknown) => ({ result: null, failure: errorOf(err) }),
        )
      : { result: null, failure: null };
  return {
    workflowId: found.workflowId,
    type: d.type,
    status,
    runId: found.runId,
    resolvedFrom: found.resolvedFrom,
    taskQueue: d.taskQueue,
    workerPolling: status === 'running' ? polled : null,
    image: d.typedSearchAttributes.get(IMAGE_KEY) ?? null,
    version: d.typedSearchAttributes.get(VERSION_KEY) ?? null,
    startTime: d.startTime.toISOString(),
    closeTime: d.closeTime?.toISOString() ?? null,
    progress: snapshot?.publish ?? null,
    sddcs: (snapshot?.sddcs ?? []).map((s) => ({
      sddc: s.sddc,
      phase: s.phase,
      source: s.source ?? null,
      bytesDone: s.bytesDone,
      bytesTotal: s.bytesTotal,
      status: s.status ?? null,
      reason: s.reason ?? null,
    })),
    ...outcome,
  };
}

export function renderText(r: StatusResult): string[] {
  const p = r.progress;
  const unpolled = r.workerPolling === false ? ` — no worker polls task queue ${r.taskQueue}` : '';
  return [
    ...(r.resolvedFrom ? [`${r.resolvedFrom.workflowId}: ${r.resolvedFrom.reason}`] : []),
    `${r.type} ${r.workflowId}${r.runId ? ` (run ${r.runId})` : ''}: ${r.status}${unpolled}`,
    ...(r.image ? [`image     ${r.image}${r.version ? `@${r.version}` : ''}`] : []),
    `started   ${r.startTime ?? '-'}${r.closeTime ? `, closed ${r.closeTime}` : ''}`,
    ...(p ? [`progress  ${p.phase}, ${formatBytes(p.bytesDone)} of ${formatBytes(p.bytesTotal)}`] : []),
    ...(r.sddcs.length > 0
      ? table(
          ['SDDC', 'STATE', 'SOURCE', 'DONE', 'REASON'],
          r.sddcs.map((s) => {
            const { state, reason } = rowState(s);
            return [s.sddc, state, s.source ?? '-', `${formatBytes(s.bytesDone)} / ${formatBytes(s.bytesTotal)}`, reason];
          }),
        )
      : []),
    // A drift check's findings: what `vmhub verify --sddcs` prints of the same run.
    ...(r.type === 'VerifySddcs' && r.result
      ? verifySddcs.renderText({ ...(r.result as VerifySddcsResult), workflowId: r.workflowId })
      : []),
    ...(r.failure ? [`failure   ${r.failure.type}: ${r.failure.message}`] : []),
  ];
}

export function register(program: Command, deps: CliDeps): void {
  program
    .command('status')
    .description('where a workflow stands: its status, progress, per-SDDC rows, and how it ended')
    .argument('<workflow-id>', 'e.g. publish:ubuntu-app:2.3.1, the run behind that version whatever its ID (see `vmhub runs`)')
    .addOption(jsonOption())
    .addHelpText('after', examples('vmhub status publish:ubuntu-app:2.3.1 --json'))
    .action(async (workflowId: string, opts: { json?: boolean }) => {
      const result = await run({ workflowId }, deps);
      print(deps.io, Boolean(opts.json), result, () => renderText(result));
    });
}
