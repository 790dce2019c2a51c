import type { Command } from 'commander';
import { describeInterval, describeSchedules, type ScheduleRow } from '../temporal/schedules';
import type { CliDeps } from './deps';
import { print } from './output';

export type SchedulesOptions = Record<string, never>;

export interface SchedulesResult {
  schedules: ScheduleRow[];
}

export async function run(_options: SchedulesOptions, deps: CliDeps): Promise<SchedulesResult> {
  return { schedules: await describeSchedules(await deps.temporal()) };
}

export function renderText(r: SchedulesResult): string[] {
  return r.schedules.map((s) =>
    s.state === 'missing'
      ? `${s.scheduleId.padEnd(24)} missing: the control worker creates it when it starts (\`npm run worker\`)`
      : `${s.scheduleId.padEnd(24)} ${s.state.padEnd(7)} ${s.workflowType ?? '-'} every ${s.everyMs === null ? '-' : describeInterval(s.everyMs)} on ${s.taskQueue ?? '-'}, next ${s.nextRun ?? '-'}, last ${s.lastRun ?? 'never'}`,
  );
}

export function register(program: Command, deps: CliDeps): void {
  program
    .command('schedules')
    .description("vmhub's Temporal Schedules (replica verification, retention): also in the Web UI under Schedules")
    .option('--json', 'print one JSON document on stdout')
    .action(async (opts: { json?: boolean }) => {
      const result = await run({}, deps);
      print(deps.io, Boolean(opts.json), result, () => renderText(result));
    });
}
