import {
  ActivityFailure,
  ApplicationFailure,
  ChildWorkflowFailure,
  continueAsNew,
  executeChild,
  isCancellation,
  ParentClosePolicy,
  setCurrentDetails,
  workflowInfo,
} from '@temporalio/workflow';
import type { DriftActivities } from '../activities/drift';
import { agentAlive, quickQueueFor, type AgentPollers } from '../shared/agent-pollers';
import { BATCH_SIZE } from '../shared/batches';
import type { DeployResult, DeployResultRow } from '../shared/deploy-input';
import {
  DEFAULT_HASH_BUDGET,
  capDetail,
  emptyDriftResult,
  MARK_CHUNK,
  MAX_DRIFT_FINDINGS,
  validateVerifySddcsInput,
  type DriftFinding,
  type SddcToCheck,
  type VerifySddcsInput,
  type VerifySddcsResult,
} from '../shared/drift-input';
import { asFailure } from '../shared/failures';
import { libraryOf } from '../shared/sddc-target';
import { plural } from '../shared/units';
import { runPool } from '../shared/concurrency';
import { control } from './activity-options';
import { onAgent } from './agent-queues';
import { DeployToSDDCs } from './deploy-to-sddcs';
import { failureReason } from './deploy-rows';

const DAY_MS = 86_400_000;
/**
 * Versions deployed again at once by a repair (each a DeployToSDDCs child): one, because an agent keeps only
 * the newest version's verified copy once it imported it, so an older version's repair beside a newer one's
 * could lose its copy between its download and its import (StagingMissing).
 */
const REPAIRS_AT_ONCE = 1;

/**
 * VerifySddcs: compares what every SDDC holds with the catalog and the expected digests, a page of at most
 * 100 SDDCs and MAX_PAGE_BYTES of copies per run (continued as new): each agent lists its copies on its quick queue (a stat per datastore
 * copy, the file list per library item), then hashes the rest on its long queue within a byte budget. A copy
 * missing, emptied, edited outside vmhub, or a library item with an extra descriptor or file is reported and
 * its deployment marked `drifted`; with `repair`, the drifted SDDCs get the same version again from a
 * DeployToSDDCs child.
 */
export async function VerifySddcs(rawInput: VerifySddcsInput = {}): Promise<VerifySddcsResult> {
  try {
    const input = validateVerifySddcsInput(rawInput);
    const result = input.carried ?? emptyDriftResult();
    const page = await control.sddcsToCheck.executeWithOptions({ summary: 'list the SDDCs and the copies they hold' }, [
      { sddcs: input.sddcs, after: input.after, limit: BATCH_SIZE },
    ]);
    setCurrentDetails(`Verify the copies on ${plural(page.sddcs.length, 'SDDC')}${input.repair ? ', repairing drift' : ''}`);
    const pollers =
      page.sddcs.length === 0
        ? {}
        : await control.agentsPollingEach.executeWithOptions(
            { summary: `are the agents of ${plural(page.sddcs.length, 'SDDC')} polling?` },
            [{ taskQueues: page.sddcs.map((s) => s.taskQueue) }],
          );
    const budgetBytes = input.hashBudgetBytes ?? DEFAULT_HASH_BUDGET;
    const rotation = Math.floor(Date.now() / DAY_MS);
    // In page order, whatever order the agents answer in.
    const checked = await Promise.all(page.sddcs.map((s) => checkSddc(s, pollers[s.taskQueue], budgetBytes, rotation)));
    const found = checked.flatMap((c) => c.findings);
    page.sddcs.forEach((s, i) => {
      // An SDDC continued from the page before was counted there.
      if (i > 0 || input.after?.copy === undefined) result.sddcsChecked++;
      result.copiesChecked += s.copies.length;
      result.copiesHashed += checked[i].hashed;
      result.copiesDeferred += checked[i].deferred;
    });
    const drifted = found.filter((f) => f.kind !== 'not-checked');
    for (let i = 0; i < drifted.length; i += MARK_CHUNK) {
      const chunk = drifted.slice(i, i + MARK_CHUNK);
      await control.markDrifted.executeWithOptions({ summary: `mark ${plural(chunk.length, 'copy', 'copies')} drifted` }, [
        { findings: chunk },
      ]);
    }
    if (drifted.length > 0 && input.repair) result.repaired += await repair(drifted);
    result.unrepaired += drifted.filter((f) => !f.repaired).length;
    result.findingsTotal += found.length;
    result.findings.push(...found.slice(0, Math.max(0, MAX_DRIFT_FINDINGS - result.findings.length)));
    if (page.next !== undefined) await continueAsNew<typeof VerifySddcs>({ ...input, after: page.next, carried: result });
    return result;
  } catch (err) {
    throw asFailure(err);
  }
}

interface SddcChecked {
  findings: DriftFinding[];
  hashed: number;
  deferred: number;
}

/** One SDDC's copies: listed on its agent's quick queue, the rest hashed on its long queue. A check that cannot run is reported `not-checked`. */
async function checkSddc(
  s: SddcToCheck,
  pollers: AgentPollers | undefined,
  budgetBytes: number,
  rotation: number,
): Promise<SddcChecked> {
  const notChecked = (why: string): SddcChecked => ({
    findings: s.copies.map((c) => ({
      sddc: s.name,
      image: c.image,
      version: c.version,
      kind: 'not-checked',
      detail: capDetail(why),
    })),
    hashed: 0,
    deferred: 0,
  });
  if (s.copies.length === 0) return { findings: [], hashed: 0, deferred: 0 };
  const p = pollers ?? { long: 0, quick: 0 };
  if (!agentAlive(p)) return notChecked(`no agent has polled ${s.taskQueue} lately`);
  const library = libraryOf(s.target);
  const task = { sddc: s.name, copies: s.copies, ...(library ? { library } : {}) };
  try {
    const quick = onAgent<DriftActivities>(quickQueueFor(s.taskQueue, p), { startToCloseTimeout: '5 minutes' });
    const listing = await quick.listDrift.executeWithOptions({ summary: `list the copies on ${s.name}` }, [task]);
    if (listing.toHash.length === 0) return { findings: listing.findings, hashed: 0, deferred: 0 };
    const long = onAgent<DriftActivities>(s.taskQueue, { startToCloseTimeout: '12 hours', heartbeatTimeout: '1 minute' });
    const hashed = await long.hashDrift.executeWithOptions(
      { summary: `hash ${plural(listing.toHash.length, 'copy', 'copies')} on ${s.name}` },
      [{ ...task, copies: listing.toHash, budgetBytes, rotation }],
    );
    return { findings: [...listing.findings, ...hashed.findings], hashed: hashed.hashed, deferred: hashed.deferred };
  } catch (err) {
    if (isCancellation(err)) throw err;
    return notChecked(`the check failed: ${failureReason(err instanceof ActivityFailure ? err.cause : err)}`);
  }
}

/**
 * Deploys each drifted version again to the SDDCs it drifted on, one DeployToSDDCs child per version: an
 * agent counts a copy present only when its bytes hash to the signed digest, so the deploy itself replaces
 * an edited copy, under its lease. Marks each finding repaired when its SDDC's row came back whole; returns how many.
 */
async function repair(drifted: DriftFinding[]): Promise<number> {
  const byVersion = new Map<string, DriftFinding[]>();
  for (const f of drifted) byVersion.set(`${f.image}@${f.version}`, [...(byVersion.get(`${f.image}@${f.version}`) ?? []), f]);
  let repaired = 0;
  await runPool([...byVersion.values()], REPAIRS_AT_ONCE, async (findings) => {
    const { image, version } = findings[0];
    const names = [...new Set(findings.map((f) => f.sddc))];
    let rows: DeployResultRow[] = [];
    let reason = '';
    try {
      rows = (await deployAgain(image, version, names)).results;
    } catch (err) {
      if (isCancellation(err)) throw err;
      const cause = err instanceof ChildWorkflowFailure ? err.cause : err;
      const details = cause instanceof ApplicationFailure && cause.type === 'DeployIncomplete' ? cause.details?.[0] : undefined;
      rows = (details as Partial<DeployResult> | undefined)?.results ?? [];
      reason = failureReason(cause);
    }
    for (const f of findings) {
      const row = rows.find((r) => r.sddc === f.sddc);
      f.repaired = row?.status === 'deployed' || row?.status === 'already-present';
      if (f.repaired) repaired++;
      else f.detail = capDetail(`${f.detail}; not repaired: ${row?.reason ?? reason}`);
    }
  });
  return repaired;
}

function deployAgain(image: string, version: string, sddcs: string[]): Promise<DeployResult> {
  const { workflowId, runId } = workflowInfo();
  return executeChild(DeployToSDDCs, {
    args: [{ image, version, sddcs }],
    workflowId: `${workflowId}:repair:${image}@${version}:${runId.slice(0, 8)}`,
    // The repair goes with the check: cancelling or ending VerifySddcs cancels its deploys.
    parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL,
    staticSummary: `Repair: deploy ${image} ${version} again to ${plural(sddcs.length, 'drifted SDDC')}`,
  });
}
