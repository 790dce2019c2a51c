import {
  ApplicationFailure,
  CancellationScope,
  ChildWorkflowCancellationType,
  ParentClosePolicy,
  condition,
  defineQuery,
  defineUpdate,
  executeChild,
  isCancellation,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { DeployGate, DeployResult, DeployResultRow } from '../shared/deploy-input';
import { asFailure } from '../shared/failures';
import { vmhubMetrics } from './metric-sinks';
import {
  ROLLOUT_QUERY,
  ROLLOUT_UPDATES,
  WAVE_ROWS_KEPT,
  overBudget,
  validateRolloutInput,
  type AbortArgs,
  type ApproveArgs,
  type OperatorAction,
  type PauseArgs,
  type PlannedWave,
  type RolloutInput,
  type RolloutPlan,
  type RolloutProgress,
  type RolloutResult,
  type WaveProgress,
} from '../shared/rollout-input';
import { plural } from '../shared/units';
import { control } from './activity-options';
import { detailsText } from './current-details';
import { DeployToSDDCs } from './deploy-to-sddcs';
import { countRows, rowsOfFailedDeploy, searchableNames } from './deploy-rows';
import { IMAGE_KEY, SDDC_KEY, VERSION_KEY } from './search-attributes';

export const rolloutQuery = defineQuery<RolloutProgress>(ROLLOUT_QUERY);
export const approveUpdate = defineUpdate<RolloutProgress, [ApproveArgs]>(ROLLOUT_UPDATES.approve);
export const pauseUpdate = defineUpdate<RolloutProgress, [PauseArgs]>(ROLLOUT_UPDATES.pause);
export const resumeUpdate = defineUpdate<RolloutProgress, [PauseArgs]>(ROLLOUT_UPDATES.resume);
export const abortUpdate = defineUpdate<RolloutProgress, [AbortArgs]>(ROLLOUT_UPDATES.abort);

/**
 * Rollout: deploys a version wave by wave. Each wave is a DeployToSDDCs child (its batches, its cleanup on
 * cancel) whose SDDCs each pass a health gate before their channel item takes the version; a wave whose
 * failures exceed its budget halts the rollout before the next wave, which never starts. Waves may wait for
 * an approval, and operators pause, resume and abort through Updates, each validated and recorded in the
 * history with who asked. Once every wave passed, the channel points at the version. The history holds a
 * handful of events per wave whatever the fleet: the rows live in the waves' runs and the catalog.
 */
export async function Rollout(rawInput: RolloutInput): Promise<RolloutResult> {
  try {
    return await new RolloutRun(validateRolloutInput(rawInput)).run();
  } catch (err) {
    throw asFailure(err);
  }
}

class RolloutRun {
  private readonly progress: RolloutProgress;
  private paused = false;
  private finishing = false;
  private abort: AbortArgs | undefined;
  private waveScope: CancellationScope | undefined;
  private plan: RolloutPlan | undefined;

  constructor(private readonly input: RolloutInput) {
    this.progress = {
      image: input.image,
      version: input.version,
      ...(input.channel ? { channel: input.channel } : {}),
      state: 'planning',
      wave: 0,
      waves: [],
      actions: [],
    };
    this.handle();
  }

  async run(): Promise<RolloutResult> {
    const { input, progress } = this;
    upsertSearchAttributes([{ key: IMAGE_KEY, value: input.image }]);
    this.show();
    const plan = await control.planRollout.executeWithOptions(
      { summary: `plan the rollout of ${input.image}@${input.version} in ${plural(Math.max(input.waves.length, 1), 'wave')}` },
      [input],
    );
    this.plan = plan;
    progress.version = plan.version;
    progress.waves = plan.waves.map((w) => ({ name: w.name, sddcs: w.sddcs.length, state: 'pending', counts: {}, failed: [] }));
    if (progress.state === 'planning') progress.state = this.paused ? 'paused' : 'running';
    upsertSearchAttributes([
      { key: VERSION_KEY, value: plan.version },
      { key: SDDC_KEY, value: searchableNames(plan.waves.flatMap((w) => w.sddcs)) },
    ]);
    let halted: string | undefined;
    for (let k = 0; k < plan.waves.length && !this.abort && halted === undefined; k++) {
      halted = await this.runWave(plan, k);
      const { state } = progress.waves[k];
      if (state === 'passed' || state === 'halted' || state === 'aborted') vmhubMetrics.rolloutWaveEnded(state);
    }
    for (const w of progress.waves) if (w.state === 'pending' || w.state === 'awaiting-approval') w.state = 'not-started';
    progress.waitingFor = undefined;
    // From here no Update applies: the outcome is settled.
    this.finishing = true;
    if (this.abort) return this.aborted(plan, this.abort);
    if (halted !== undefined) {
      progress.state = 'halted';
      // The channel stays where it was, and so does every channel item: those the halted rollout moved go back.
      const note = await this.putBack(plan);
      this.show();
      throw ApplicationFailure.nonRetryable(`${halted}${note}`, 'RolloutHalted', progress);
    }
    if (plan.channel) {
      await control.pointChannel.executeWithOptions(
        { summary: `point channel ${plan.channel} of ${plan.image} at ${plan.version}` },
        [{ image: plan.image, channel: plan.channel, version: plan.version, rollback: input.rollback, by: input.by }],
      );
    }
    progress.state = 'completed';
    this.show();
    return progress;
  }

  /** One wave: its approval, its deploy with the gate, its budget, its bake; returns why it halted the rollout, if it did. */
  private async runWave(plan: RolloutPlan, k: number): Promise<string | undefined> {
    const { progress } = this;
    const wave = progress.waves[k];
    const planned = plan.waves[k];
    progress.wave = k + 1;
    await this.whilePaused();
    if (planned.approval && !wave.approvedBy && !this.abort) {
      wave.state = 'awaiting-approval';
      this.waitFor(`approval of wave ${k + 1}: vmhub rollout approve ${workflowInfo().workflowId}`);
      await condition(() => wave.approvedBy !== undefined || this.abort !== undefined);
      await this.whilePaused();
    }
    if (this.abort) return undefined;
    wave.state = 'deploying';
    this.waitFor(`the deploy of wave ${k + 1} to ${plural(planned.sddcs.length, 'SDDC')}`);
    const rows = await this.deployWave(plan, planned, this.childId(`wave-${k + 1}`), wave);
    if (this.abort) {
      wave.state = 'aborted';
      return undefined;
    }
    const failed = (wave.counts.failed ?? 0) + (wave.counts.skipped ?? 0);
    if (overBudget(failed, planned.sddcs.length, planned.gate)) {
      wave.state = 'halted';
      wave.reason = haltReason(k, planned, failed, rows);
      return wave.reason;
    }
    const bake = planned.gate.bakeSeconds ?? 0;
    if (bake > 0) {
      wave.state = 'baking';
      this.waitFor(`wave ${k + 1} to bake for ${bake} s`);
      await condition(() => this.abort !== undefined, bake * 1000);
      if (this.abort) {
        wave.state = 'aborted';
        return undefined;
      }
    }
    wave.state = 'passed';
    this.show();
    return undefined;
  }

  /**
   * Deploys one wave as a child run that an abort cancels (its agents remove what they left); returns its
   * failed and skipped rows, and folds its counts into the wave's progress.
   */
  private async deployWave(
    plan: RolloutPlan,
    planned: PlannedWave,
    workflowId: string,
    wave: WaveProgress,
  ): Promise<DeployResultRow[]> {
    const gate: DeployGate = {
      ...(planned.gate.instantiate === false ? {} : { instantiate: true }),
      ...(planned.gate.operatorCheck ? { operatorCheck: planned.gate.operatorCheck } : {}),
      ...(planned.gate.guestTimeoutSeconds ? { guestTimeoutSeconds: planned.gate.guestTimeoutSeconds } : {}),
    };
    wave.deployWorkflowId = workflowId;
    const scope = new CancellationScope();
    this.waveScope = scope;
    let result: Partial<DeployResult>;
    try {
      result = await scope.run(() =>
        executeChild(DeployToSDDCs, {
          args: [
            {
              image: plan.image,
              version: plan.version,
              sddcs: planned.sddcs,
              ...(plan.channel ? { channel: plan.channel } : {}),
              gate,
            },
          ],
          workflowId,
          cancellationType: ChildWorkflowCancellationType.WAIT_CANCELLATION_COMPLETED,
          parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL,
          staticSummary: `Wave ${wave.name}: deploy ${plan.image} ${plan.version} to ${plural(planned.sddcs.length, 'SDDC')}`,
        }),
      );
    } catch (err) {
      // A cancel of the rollout itself ends it; an abort's cancel of the wave is an outcome.
      if (isCancellation(err) && !this.abort) throw err;
      // A wave cancelled by an abort has no result: its rows are in the catalog.
      result = isCancellation(err) ? { results: [] } : rowsOfFailedDeploy(err, planned.sddcs, '');
    } finally {
      this.waveScope = undefined;
    }
    const rows = result.results ?? [];
    wave.counts = result.counts ?? countRows(rows);
    wave.failed = rows.filter((r) => r.status === 'failed' || r.status === 'skipped').slice(0, WAVE_ROWS_KEPT);
    return wave.failed;
  }

  /**
   * An abort: later waves never start; with `rollback`, the channel items the rollout moved go back on the
   * version the channel points at. The run fails RolloutAborted, naming who aborted.
   */
  private async aborted(plan: RolloutPlan, abort: AbortArgs): Promise<never> {
    this.progress.state = 'aborted';
    const note = abort.rollback ? await this.putBack(plan) : '';
    this.show();
    const why = abort.reason ? `: ${abort.reason}` : '';
    throw ApplicationFailure.nonRetryable(`rollout aborted by ${abort.by}${why}${note}`, 'RolloutAborted', this.progress);
  }

  /**
   * Puts the channel items this rollout moved to its version back on the version the channel points at (a
   * deploy of that version, which moves no bytes where the SDDC still holds it); returns what it did, for
   * the run's message. Only SDDCs of waves that ran whose channel item the catalog says holds the new version.
   */
  private async putBack(plan: RolloutPlan): Promise<string> {
    const { progress } = this;
    const ran = progress.waves.flatMap((w, k) => (w.deployWorkflowId ? [k] : []));
    if (!plan.channel || ran.length === 0) return '';
    if (!plan.channelBefore)
      return `; the items of channel ${plan.channel} it moved stay on ${plan.version}: the channel pointed at no version before`;
    const moved = await control.channelItemsHolding.executeWithOptions(
      { summary: `find the items of channel ${plan.channel} this rollout moved to ${plan.version}` },
      [{ image: plan.image, channel: plan.channel, version: plan.version, sddcs: ran.flatMap((k) => plan.waves[k].sddcs) }],
    );
    if (moved.length === 0) return '';
    this.waitFor(`the items of channel ${plan.channel} on ${plural(moved.length, 'SDDC')} to go back to ${plan.channelBefore}`);
    const back: PlannedWave = { name: 'put back', sddcs: moved, approval: false, gate: { instantiate: false } };
    const wave: WaveProgress = { name: 'put back', sddcs: moved.length, state: 'deploying', counts: {}, failed: [] };
    progress.waves.push(wave);
    const failed = await this.deployWave({ ...plan, version: plan.channelBefore }, back, this.childId('put-back'), wave);
    wave.state = failed.length === 0 ? 'passed' : 'halted';
    for (const k of ran) if (progress.waves[k].state !== 'halted') progress.waves[k].state = 'rolled-back';
    progress.waitingFor = undefined;
    const failures = failed.length > 0 ? `, ${plural(failed.length, 'SDDC')} failed` : '';
    return `; the ${plan.channel} item of ${plural(moved.length, 'SDDC')} put back on ${plan.channelBefore}${failures}`;
  }

  /** A child run's ID: the rollout's own and its run, so the runs of two rollouts of one channel never share one. */
  private childId(suffix: string): string {
    const { workflowId, runId } = workflowInfo();
    return `${workflowId}:${runId.slice(0, 8)}:${suffix}`;
  }

  private async whilePaused(): Promise<void> {
    if (!this.paused || this.abort) return;
    this.waitFor('a resume: vmhub rollout resume ' + workflowInfo().workflowId);
    await condition(() => !this.paused || this.abort !== undefined);
  }

  private waitFor(what: string): void {
    this.progress.waitingFor = what;
    this.show();
  }

  private show(): void {
    const p = this.progress;
    const headline = `Rollout ${p.image} ${p.version}${p.channel ? ` to channel ${p.channel}` : ''}: ${p.state}`;
    const waves = p.waves.map((w, k) => {
      const ended = Object.values(w.counts).reduce((n, c) => n + (c ?? 0), 0);
      const who = w.approvedBy ? `, approved by ${w.approvedBy}` : '';
      return `${k + 1}. ${w.name}: ${w.state} (${ended} of ${plural(w.sddcs, 'SDDC')} done${who})${w.reason ? ` — ${w.reason}` : ''}`;
    });
    setCurrentDetails(detailsText(headline, p.waitingFor ? `waiting for ${p.waitingFor}` : '', waves.join('\n')));
  }

  private record(action: OperatorAction['action'], by: string, extra: Partial<OperatorAction> = {}): void {
    this.progress.actions.push({ action, by, at: new Date().toISOString(), ...extra });
  }

  /** The Updates: each validator refuses what cannot apply now, so a refused one leaves no trace in the history. */
  private handle(): void {
    const p = this.progress;
    const open = () => {
      if (p.state === 'completed' || p.state === 'halted' || p.state === 'aborted') throw new Error(`the rollout has ${p.state}`);
      if (this.finishing) throw new Error('the rollout is finishing: its waves have ended');
    };
    const named = (by: unknown, reason?: unknown) => {
      if (typeof by !== 'string' || by.length === 0 || by.length > 80)
        throw new Error('say who you are: by must be a name of 1 to 80 characters');
      if (reason !== undefined && (typeof reason !== 'string' || reason.length > 200))
        throw new Error('reason must be a text of at most 200 characters');
    };
    setHandler(rolloutQuery, () => p);
    setHandler(
      approveUpdate,
      ({ by, wave }) => {
        const k = wave ?? p.waves.findIndex((w) => w.state === 'awaiting-approval') + 1;
        p.waves[k - 1].approvedBy = by;
        this.record('approve', by, { wave: k });
        this.show();
        return p;
      },
      {
        validator: ({ by, wave }) => {
          open();
          named(by);
          if (wave !== undefined && (!Number.isInteger(wave) || wave < 1))
            throw new Error('wave must be a wave number, 1 or more');
          const k = wave ?? p.waves.findIndex((w) => w.state === 'awaiting-approval') + 1;
          if (k === 0) throw new Error('no wave is waiting for approval; name one with --wave');
          const w = p.waves[k - 1];
          if (!Number.isInteger(k) || !w) throw new Error(`the rollout has no wave ${k}`);
          if (this.plan && !this.plan.waves[k - 1].approval) throw new Error(`wave ${k} needs no approval`);
          if (w.approvedBy) throw new Error(`wave ${k} was approved already, by ${w.approvedBy}`);
          if (w.state !== 'pending' && w.state !== 'awaiting-approval') throw new Error(`wave ${k} is ${w.state}`);
        },
      },
    );
    setHandler(
      pauseUpdate,
      ({ by, reason }) => {
        this.paused = true;
        if (p.state === 'running') p.state = 'paused';
        this.record('pause', by, reason ? { reason } : {});
        this.show();
        return p;
      },
      {
        validator: ({ by, reason }) => {
          open();
          named(by, reason);
          if (this.paused) throw new Error('the rollout is paused already');
        },
      },
    );
    setHandler(
      resumeUpdate,
      ({ by }) => {
        this.paused = false;
        if (p.state === 'paused') p.state = 'running';
        this.record('resume', by);
        this.show();
        return p;
      },
      {
        validator: ({ by }) => {
          open();
          named(by);
          if (!this.paused) throw new Error('the rollout is not paused');
        },
      },
    );
    setHandler(
      abortUpdate,
      (args) => {
        this.abort = args;
        this.record('abort', args.by, args.reason ? { reason: args.reason } : {});
        this.waveScope?.cancel();
        this.show();
        return p;
      },
      {
        validator: ({ by, reason, rollback }) => {
          open();
          named(by, reason);
          if (rollback !== undefined && typeof rollback !== 'boolean') throw new Error('rollback must be true or false');
          if (this.abort) throw new Error(`the rollout is being aborted already, by ${this.abort.by}`);
        },
      },
    );
  }
}

/** "wave 1 (east-1) halted the rollout: 1 of 1 SDDC failed (budget 0): east-1: gate guest failed: …" */
function haltReason(k: number, wave: PlannedWave, failed: number, rows: DeployResultRow[]): string {
  const budget = [
    wave.gate.maxFailures !== undefined ? `${wave.gate.maxFailures}` : '',
    wave.gate.maxFailurePercent !== undefined ? `${wave.gate.maxFailurePercent} %` : '',
  ].filter((b) => b !== '');
  const named = rows.slice(0, 3).map((r) => `${r.sddc}: ${r.reason ?? r.status}`);
  const more = failed > named.length ? `; and ${failed - named.length} more` : '';
  return `wave ${k + 1} (${wave.name}) halted the rollout: ${failed} of ${plural(wave.sddcs.length, 'SDDC')} failed (budget ${budget.join(' or ') || '0'}): ${named.join('; ')}${more}`;
}
