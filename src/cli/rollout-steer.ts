import type { Command } from 'commander';
import { WorkflowUpdateFailedError } from '@temporalio/client';
import { VmhubError } from '../shared/errors';
import { ROLLOUT_QUERY, ROLLOUT_UPDATES, type RolloutProgress } from '../shared/rollout-input';
import { examples, jsonOption } from './command';
import type { CliDeps } from './deps';
import { print } from './output';
import { operatorName, rolloutId, waveLines } from './rollout-plan';
import { rolloutGroup } from './rollout';

/** `vmhub rollout approve|pause|resume|abort|status <rollout>`: Temporal Updates and a query on the running rollout. */

type Action = keyof typeof ROLLOUT_UPDATES;

/** Sends the Update and returns the rollout as it stands after it; a refusal (validator) is RolloutRefused with its reason. */
export async function steer(ref: string, action: Action, args: Record<string, unknown>, deps: CliDeps): Promise<RolloutProgress> {
  const handle = (await deps.temporal()).workflow.getHandle(rolloutId(ref));
  try {
    return await handle.executeUpdate<RolloutProgress, [Record<string, unknown>]>(ROLLOUT_UPDATES[action], { args: [args] });
  } catch (err) {
    if (err instanceof WorkflowUpdateFailedError) {
      throw new VmhubError(
        'RolloutRefused',
        `${action} refused by ${handle.workflowId}: ${(err.cause as Error | undefined)?.message ?? err.message}`,
      );
    }
    throw err;
  }
}

export async function status(ref: string, deps: CliDeps): Promise<RolloutProgress> {
  return (await deps.temporal()).workflow.getHandle(rolloutId(ref)).query<RolloutProgress>(ROLLOUT_QUERY);
}

function render(p: RolloutProgress): string[] {
  return [
    `rollout of ${p.image}@${p.version}${p.channel ? ` on channel ${p.channel}` : ''}: ${p.state}${p.wave > 0 ? `, wave ${p.wave} of ${p.waves.length}` : ''}`,
    ...(p.waitingFor ? [`waiting for ${p.waitingFor}`] : []),
    ...waveLines(p),
  ];
}

export function register(program: Command, deps: CliDeps): void {
  const group = rolloutGroup(program);
  const command = (name: Action, description: string) =>
    group
      .command(name)
      .description(description)
      .argument('<rollout>', 'its workflow ID, or <image>:<channel> (rollout:photon:stable)')
      .option('--by <name>', 'who asks, for the record (default VMHUB_OPERATOR or the login name)')
      .addOption(jsonOption());
  command('approve', 'let a wave that waits for approval start (default: the one waiting)')
    .option('--wave <n>', 'approve this wave, 1-based, ahead of time')
    .addHelpText('after', examples('vmhub rollout approve photon:stable', 'vmhub rollout approve rollout:photon:stable --wave 3'))
    .action(async (ref: string, opts: { by?: string; wave?: string; json?: boolean }) => {
      const wave = opts.wave === undefined ? undefined : Number(opts.wave);
      if (wave !== undefined && !(Number.isInteger(wave) && wave >= 1))
        throw new VmhubError('InvalidInput', '--wave must be a wave number, e.g. --wave 2');
      const p = await steer(ref, 'approve', { by: operatorName(opts.by), ...(wave !== undefined ? { wave } : {}) }, deps);
      print(deps.io, Boolean(opts.json), p, () => render(p));
    });
  command('pause', 'start no further wave until `rollout resume` (a wave deploying carries on)')
    .option('--reason <text>', 'why, for the record')
    .action(async (ref: string, opts: { by?: string; reason?: string; json?: boolean }) => {
      const p = await steer(ref, 'pause', { by: operatorName(opts.by), ...(opts.reason ? { reason: opts.reason } : {}) }, deps);
      print(deps.io, Boolean(opts.json), p, () => render(p));
    });
  command('resume', 'carry on after a pause').action(async (ref: string, opts: { by?: string; json?: boolean }) => {
    const p = await steer(ref, 'resume', { by: operatorName(opts.by) }, deps);
    print(deps.io, Boolean(opts.json), p, () => render(p));
  });
  command('abort', 'stop the rollout: the wave deploying is cancelled (its agents clean up), later waves never start')
    .option('--rollback', 'also put the channel items of the waves that ran back on the version the channel pointed at')
    .option('--reason <text>', 'why, for the record')
    .action(async (ref: string, opts: { by?: string; reason?: string; rollback?: boolean; json?: boolean }) => {
      const args = {
        by: operatorName(opts.by),
        ...(opts.reason ? { reason: opts.reason } : {}),
        ...(opts.rollback ? { rollback: true } : {}),
      };
      const p = await steer(ref, 'abort', args, deps);
      print(deps.io, Boolean(opts.json), p, () => render(p));
    });
  group
    .command('status')
    .description("a rollout's waves, what it waits for, and who approved, paused or aborted")
    .argument('<rollout>', 'its workflow ID, or <image>:<channel>')
    .addOption(jsonOption())
    .action(async (ref: string, opts: { json?: boolean }) => {
      const p = await status(ref, deps);
      print(deps.io, Boolean(opts.json), p, () => render(p));
    });
}
