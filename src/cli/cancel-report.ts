import type { Client } from '@temporalio/client';
import { plural } from '../shared/units';
import { readProgress, rowState, type DeployReading, type RunReadingOf } from './run-progress';

/** One SDDC of a run's deploy and how it ended: deployed, already-present, skipped, failed, `cancelled`, or its phase. */
export interface EndedRow {
  sddc: string;
  status: string;
  reason: string | null;
}

/**
 * What a run did, undid and left, as its own progress (and its deploy's) tells it once it has stopped:
 * `cancel` prints it. Each line is for an operator; `left` names the command that finishes what is left.
 */
export interface CancelReport {
  /** What stays done: the version published, the replicas copied (a publish's own progress says). */
  done: string[];
  /** What the run removed as it stopped: a publish's blob and staged blocks, an agent's partial download. */
  cleanup: string[];
  /** What is left unfinished, and the command that finishes it. */
  left: string[];
  /** Every SDDC of the run's deploy (a publish's deploy's too) that has a row, with how it ended. */
  sddcs: EndedRow[];
}

/** SDDCs a `--to` list names before the command says to run the same deploy again instead. */
const NAMED = 20;

/** Nothing to say: a run whose progress cannot be read (gone, or never started on a worker). */
const SILENT: CancelReport = { done: [], cleanup: [], left: [], sddcs: [] };

export async function cancelReport(client: Client, workflowId: string): Promise<CancelReport> {
  const reading = await readProgress(client, workflowId).catch(() => undefined);
  return reading ? reportOf(reading) : SILENT;
}

export function reportOf(reading: RunReadingOf): CancelReport {
  if (reading.kind === 'deploy') return deployReport(reading);
  const { progress } = reading;
  const own: CancelReport = { done: progress.done ?? [], cleanup: progress.cleanup ?? [], left: progress.left ?? [], sddcs: [] };
  if (!reading.deploy) return own;
  const deploy = deployReport({
    ...reading.deploy,
    image: reading.deploy.image ?? reading.image,
    version: reading.deploy.version ?? reading.version,
  });
  return {
    done: [...own.done, ...deploy.done],
    cleanup: [...own.cleanup, ...deploy.cleanup],
    left: [...own.left, ...deploy.left],
    sddcs: deploy.sddcs,
  };
}

/**
 * A deploy's rows, each with how it ended. A cancelled SDDC's reason says what its agent removed. Once the
 * run has closed, the SDDCs it did not deploy to (failed, cancelled, or in batches that never started; a
 * skipped one does not fit, so deploying again would not help, unless it was skipped for want of an agent)
 * are left, with the deploy that finishes them.
 */
function deployReport(reading: DeployReading): CancelReport {
  const ref = `${reading.image ?? '<image>'}@${reading.version ?? '<version>'}`;
  const sddcs = reading.sddcs.map((s): EndedRow => {
    const { state, reason } = rowState(s);
    return { sddc: s.sddc, status: state, reason: reason || null };
  });
  const cleanup = reading.sddcs.filter((s) => rowState(s).state === 'cancelled').map((s) => `${s.sddc}: ${s.reason}`);
  const unlisted = reading.sddcsTotal - sddcs.length - reading.notStarted;
  const done =
    unlisted > 0
      ? [`${plural(unlisted, 'more SDDC')} ended in batches that finished (\`vmhub show ${ref}\` lists every SDDC)`]
      : [];
  if (reading.status === 'running') return { done, cleanup, left: [], sddcs };
  const settled = (s: EndedRow) =>
    ['deployed', 'already-present'].includes(s.status) || (s.status === 'skipped' && !s.reason?.startsWith('no agent'));
  const missing = sddcs.filter((s) => !settled(s)).map((s) => s.sddc);
  const notStarted = reading.notStarted > 0 ? [`${plural(reading.notStarted, 'SDDC')} whose batches did not start`] : [];
  if (missing.length + notStarted.length === 0) return { done, cleanup, left: [], sddcs };
  const command =
    notStarted.length === 0 && missing.length <= NAMED
      ? `\`vmhub deploy ${ref} --to ${missing.join(',')}\` deploys ${missing.length === 1 ? 'it' : 'them'}`
      : `the same deploy again (\`vmhub deploy ${ref} --to …\`) finishes it: the SDDCs that have the image end already-present`;
  const named = missing.length <= NAMED ? missing : [...missing.slice(0, NAMED), `${missing.length - NAMED} more`];
  return { done, cleanup, left: [`not deployed to ${[...named, ...notStarted].join(', ')}; ${command}`], sddcs };
}
