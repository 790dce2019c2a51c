import { ScheduleAlreadyRunning, ScheduleNotFoundError, ScheduleOverlapPolicy, type Client } from '@temporalio/client';
import { msToNumber } from '@temporalio/common';
import type { Config } from '../config';
import { VmhubError } from '../shared/errors';
import { connectClient } from './connection';
import { plural } from '../shared/units';

/**
 * The lifecycle's Temporal Schedules: replica verification, SDDC drift detection and retention. They are ordinary schedules,
 * listed by the Web UI under Schedules and by `temporal schedule list`. `npm run services -- start` creates
 * them (so they are there before any worker has run), the control worker when it starts, and `vmhub
 * retention set`; each brings an existing schedule's interval and task queue up to date and keeps
 * whether an operator paused it; only the control worker changes a run's input.
 */
export const VERIFY_SCHEDULE_ID = 'vmhub-verify-replicas';
export const RETENTION_SCHEDULE_ID = 'vmhub-apply-retention';
export const VERIFY_SDDCS_SCHEDULE_ID = 'vmhub-verify-sddcs';

interface LifecycleSchedule {
  scheduleId: string;
  workflowType: 'VerifyReplicas' | 'ApplyRetention' | 'VerifySddcs';
  every: number;
  note: string;
  /** The run's input; `{}` when absent. */
  input?: Record<string, unknown>;
}

/**
 * Every interval is a Temporal duration (`1 day`, `6h`); VMHUB_VERIFY_EVERY, VMHUB_VERIFY_SDDCS_EVERY and
 * VMHUB_RETENTION_EVERY override the defaults. VMHUB_REPAIR_DRIFT=1 has the scheduled VerifySddcs repair what it finds.
 */
export function lifecycleSchedules(env: NodeJS.ProcessEnv = process.env): LifecycleSchedule[] {
  return [
    {
      scheduleId: VERIFY_SCHEDULE_ID,
      workflowType: 'VerifyReplicas',
      every: interval('VMHUB_VERIFY_EVERY', env.VMHUB_VERIFY_EVERY ?? '1 day'),
      note: 'Re-check every replica against the primary, and replicate again what differs',
    },
    {
      scheduleId: VERIFY_SDDCS_SCHEDULE_ID,
      workflowType: 'VerifySddcs',
      every: interval('VMHUB_VERIFY_SDDCS_EVERY', env.VMHUB_VERIFY_SDDCS_EVERY ?? '1 day'),
      note: "Compare every SDDC's copies with the catalog's digests, and mark what drifted",
      input: { repair: env.VMHUB_REPAIR_DRIFT === '1' },
    },
    {
      scheduleId: RETENTION_SCHEDULE_ID,
      workflowType: 'ApplyRetention',
      every: interval('VMHUB_RETENTION_EVERY', env.VMHUB_RETENTION_EVERY ?? '1 hour'),
      note: 'Retire the versions beyond each retention policy that no SDDC holds',
    },
  ];
}

/** How often the verify schedule runs (VMHUB_VERIFY_EVERY): its runs share a day's byte budget. */
export function verifyEveryMs(env: NodeJS.ProcessEnv = process.env): number {
  return lifecycleSchedules(env).find((s) => s.scheduleId === VERIFY_SCHEDULE_ID)!.every;
}

function interval(name: string, text: string): number {
  let ms: number;
  try {
    ms = msToNumber(text as Parameters<typeof msToNumber>[0]);
  } catch {
    ms = NaN;
  }
  if (!Number.isFinite(ms) || ms < 60_000) {
    throw new VmhubError(
      'InvalidInput',
      `${name} must be a duration of a minute or more, such as "1 day" or "6h", got "${text}"`,
    );
  }
  return ms;
}

/**
 * Creates the schedules, or updates them to this configuration; safe to call at every start. An existing
 * schedule keeps its run's input (VMHUB_REPAIR_DRIFT) unless `setInputs`: only the control worker sets it,
 * not whichever shell last ran `vmhub retention set`.
 */
export async function ensureSchedules(
  client: Client,
  config: Config,
  env: NodeJS.ProcessEnv = process.env,
  setInputs = false,
): Promise<string[]> {
  for (const s of lifecycleSchedules(env)) {
    const spec = { intervals: [{ every: s.every }] };
    const action = {
      type: 'startWorkflow' as const,
      workflowType: s.workflowType,
      args: [s.input ?? {}],
      taskQueue: config.taskQueue,
      workflowId: s.scheduleId,
      staticSummary: s.note,
    };
    // A run still going when the next is due is left to finish: two would check or retire the same versions.
    const policies = { overlap: ScheduleOverlapPolicy.SKIP };
    try {
      await client.schedule.create({ scheduleId: s.scheduleId, spec, action, policies, state: { note: s.note } });
    } catch (err) {
      if (!(err instanceof ScheduleAlreadyRunning)) throw err;
      await client.schedule.getHandle(s.scheduleId).update((previous) => {
        const args = !setInputs && previous.action.type === 'startWorkflow' ? previous.action.args : action.args;
        return { ...previous, spec, action: { ...action, args }, policies: { ...previous.policies, ...policies } };
      });
    }
  }
  return lifecycleSchedules(env).map((s) => s.scheduleId);
}

/** ensureSchedules on the configured Temporal server, over a connection of its own. */
export async function ensureSchedulesAt(config: Config, setInputs = false): Promise<string[]> {
  const client = await connectClient(config.temporal);
  try {
    return await ensureSchedules(client, config, process.env, setInputs);
  } finally {
    await client.connection.close();
  }
}

export interface ScheduleRow {
  scheduleId: string;
  workflowType: string | null;
  /** Milliseconds between runs; null when the schedule is missing or has no interval. */
  everyMs: number | null;
  taskQueue: string | null;
  state: 'active' | 'paused' | 'missing';
  nextRun: string | null;
  lastRun: string | null;
}

/** vmhub's schedules as the server has them now; one that does not exist is listed as `missing`. */
export async function describeSchedules(client: Client, env: NodeJS.ProcessEnv = process.env): Promise<ScheduleRow[]> {
  const rows: ScheduleRow[] = [];
  for (const s of lifecycleSchedules(env)) {
    const d = await client.schedule
      .getHandle(s.scheduleId)
      .describe()
      .catch((err: unknown) => {
        if (err instanceof ScheduleNotFoundError) return undefined;
        throw err;
      });
    const last = d?.info.recentActions.at(-1);
    rows.push({
      scheduleId: s.scheduleId,
      workflowType: d?.action.workflowType ?? null,
      everyMs: d?.spec.intervals?.[0]?.every ?? null,
      taskQueue: d?.action.taskQueue ?? null,
      state: !d ? 'missing' : d.state.paused ? 'paused' : 'active',
      nextRun: d?.info.nextActionTimes[0]?.toISOString() ?? null,
      lastRun: last?.takenAt.toISOString() ?? null,
    });
  }
  return rows;
}

/** An interval as people say it: `1 day`, `6 hours`, `90 minutes`. */
export function describeInterval(ms: number): string {
  for (const [unit, size] of [
    ['day', 86_400_000],
    ['hour', 3_600_000],
    ['minute', 60_000],
    ['second', 1000],
  ] as const) {
    if (ms >= size && ms % size === 0) return plural(ms / size, unit);
  }
  return `${ms} ms`;
}
