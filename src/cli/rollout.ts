import type { Command } from 'commander';
import type { RolloutPolicy } from '../catalog/channel-records';
import { validateImageName } from '../shared/names';
import { validateRolloutInput, type RolloutInput, type RolloutProgress } from '../shared/rollout-input';
import { parseRef, requireControlWorkers } from './checks';
import { examples, jsonOption } from './command';
import type { CliDeps } from './deps';
import { print, processIo } from './output';
import {
  followRollout,
  operatorName,
  startOptions,
  startRollout,
  waveLines,
  waveOptions,
  wavesOf,
  type RolloutOutcome,
  type WaveFlags,
} from './rollout-plan';

/** `vmhub rollout start` and `vmhub rollout policy`; the steering commands are in rollout-steer.ts. */

export type RolloutCliResult = { workflowId: string; waited: false } | (RolloutOutcome & { waited: true });

/** The `rollout` command group, made once and shared by its subcommand modules. */
export function rolloutGroup(program: Command): Command {
  const existing = program.commands.find((c) => c.name() === 'rollout');
  if (existing) return existing;
  return program
    .command('rollout')
    .description('deploy a version wave by wave with health gates; approve, pause, resume, abort, status, policy');
}

/** Starts the rollout (after checking a control worker polls) and, unless told not to, follows it to its end. */
export async function runRollout(input: RolloutInput, wait: boolean, deps: CliDeps): Promise<RolloutCliResult> {
  const client = await deps.temporal();
  await requireControlWorkers(client, deps.config);
  const handle = await startRollout(client, deps.config, input);
  if (!wait) return { workflowId: handle.workflowId, waited: false };
  return { ...(await followRollout(handle, deps.io ?? processIo)), waited: true };
}

export function renderRollout(r: RolloutCliResult): string[] {
  if (!r.waited) return [`started ${r.workflowId}; follow it with \`vmhub rollout status ${r.workflowId}\``];
  return [
    headline(r.progress, r.workflowId),
    ...(r.failure ? [`${r.failure.type}: ${r.failure.message}`] : []),
    ...waveLines(r.progress),
  ];
}

function headline(p: RolloutProgress, workflowId: string): string {
  return `rollout of ${p.image}@${p.version}${p.channel ? ` on channel ${p.channel}` : ''} ${p.state}  (workflow ${workflowId})`;
}

/** 0 when the rollout completed, 2 when it halted or was aborted. */
export function rolloutExitCode(r: RolloutCliResult): number {
  return r.waited && r.failure ? 2 : 0;
}

type StartFlags = WaveFlags & { channel?: string; wait: boolean; by?: string; json?: boolean };

export function register(program: Command, deps: CliDeps): void {
  const group = rolloutGroup(program);
  startOptions(
    waveOptions(
      group
        .command('start')
        .description('roll image@version out wave by wave; exits 2 when a wave halts the rollout or it is aborted')
        .argument('<ref>', 'image@version or image@latest')
        .option(
          '--channel <name>',
          "the channel that points at the version once every wave passed (each SDDC's channel item follows)",
        ),
    ),
  )
    .addHelpText(
      'after',
      examples(
        'vmhub rollout start photon@5.0.1 --channel stable --wave east-1 --wave east-2 --wave west-1 --approve 2',
        'vmhub rollout start photon@5.0.1 --wave ring=canary --wave dc=dc-east --wave dc=dc-west --bake 30m --max-failure-percent 5',
      ),
    )
    .action(async (ref: string, opts: StartFlags) => {
      const { image, version } = parseRef(ref);
      const input = {
        image,
        version,
        waves: wavesOf(opts),
        by: operatorName(opts.by),
        ...(opts.channel ? { channel: opts.channel } : {}),
      };
      const result = await runRollout(input, opts.wait, deps);
      print(deps.io, Boolean(opts.json), result, () => renderRollout(result));
      process.exitCode = rolloutExitCode(result);
    });
  waveOptions(
    group
      .command('policy')
      .description("store the waves an image's rollouts take when their command gives none; without waves, show it")
      .argument('<image>'),
  )
    .addOption(jsonOption())
    .addHelpText(
      'after',
      examples('vmhub rollout policy photon --wave ring=canary --wave dc=dc-east --wave dc=dc-west --approve 2'),
    )
    .action(async (image: string, opts: WaveFlags & { json?: boolean }) => {
      const result = await policy(validateImageName(image), wavesOf(opts), deps);
      print(deps.io, Boolean(opts.json), result, () =>
        result.waves.length === 0
          ? [`${image} has no rollout policy`]
          : [`rollout policy of ${image}:`, ...result.waves.map((w, i) => `  ${i + 1}. ${JSON.stringify(w)}`)],
      );
    });
}

async function policy(image: string, waves: RolloutPolicy['waves'], deps: CliDeps): Promise<RolloutPolicy> {
  const catalog = await deps.catalog();
  if (waves.length === 0) return (await catalog.channels.getPolicy(image)) ?? { image, waves: [] };
  validateRolloutInput({ image, version: 'latest', waves });
  await catalog.channels.setPolicy({ image, waves });
  return { image, waves };
}
