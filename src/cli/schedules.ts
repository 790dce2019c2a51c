import type { Command } from 'commander';
import { describeInterval, describeSchedules, type ScheduleRow } from '../temporal/schedules';
import type { CliDeps } from './deps';
import { print, table } from './output';

export type SchedulesOptions = Record<string, never>;

export interface SchedulesResult {
  schedules: ScheduleRow[];
}

export async function run(_options: SchedulesOptions, deps: CliDeps): Promise<SchedulesResult> {
  return { schedules: await describeSchedules(await deps.temporal()) };
}

/** A table under a header row; a missing schedule is a row too, with a line below saying what creates it. */
export function renderText(r: SchedulesResult): string[] {
  const rows = r.schedules.map((s) => [
    s.scheduleId,
    s.state,
    s.workflowType ?? '-',
    s.everyMs === null ? '-' : describeInterval(s.everyMs),
    s.taskQueue ?? '-',
    s.nextRun ?? '-',
    s.state === 'missing' ? '-' : (s.lastRun ?? 'never'),
  ]);
  const missing = r.schedules.some((s) => s.state === 'missing');
  return [
    ...table(['SCHEDULE', 'STATE', 'WORKFLOW', 'EVERY', 'TASK QUEUE', 'NEXT RUN', 'LAST RUN'], rows),
    ...(missing ? ['', 'missing: the control worker creates it when it starts (`npm run worker`)'] : []),
  ];
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
