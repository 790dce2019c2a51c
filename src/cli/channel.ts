import type { Command } from 'commander';
import type { ChannelItemRecord, ChannelRecord } from '../catalog/channel-records';
import { VmhubError } from '../shared/errors';
import { validateChannelName, validateImageName, validateVersion } from '../shared/names';
import { examples, jsonOption } from './command';
import type { CliDeps } from './deps';
import { print, table } from './output';
import { renderRollout, rolloutExitCode, runRollout, type RolloutCliResult } from './rollout';
import { operatorName, startOptions, waveOptions, wavesOf, type WaveFlags } from './rollout-plan';

/** `vmhub channel set|list` and `vmhub rollback`: channels point at versions, and rollouts move them. */

export interface ChannelList {
  image: string;
  channels: ChannelRecord[];
  items: ChannelItemRecord[];
}

export async function list(image: string, deps: CliDeps): Promise<ChannelList> {
  const catalog = await deps.catalog();
  return { image, channels: await catalog.channels.list(image), items: await catalog.channels.itemsOf(image) };
}

export function renderList(r: ChannelList): string[] {
  if (r.channels.length === 0 && r.items.length === 0)
    return [`${r.image} has no channel; set one with \`vmhub channel set ${r.image} stable <version>\``];
  const lines = r.channels.map(
    (c) =>
      `${c.channel} → ${c.version}${c.previous.length > 0 ? ` (before: ${c.previous.join(', ')})` : ''}${c.rolledBack ? ', rolled back' : ''}`,
  );
  const rows = r.items.map((i) => [
    i.channel,
    i.sddc,
    i.version,
    i.placement.itemId,
    String(i.bytesFetched),
    i.updatedAt.toISOString(),
  ]);
  return [
    ...lines,
    ...(rows.length > 0 ? ['', ...table(['CHANNEL', 'SDDC', 'HOLDS', 'ITEM', 'BYTES FETCHED', 'UPDATED'], rows)] : []),
  ];
}

/** Rolls the channel back: its previous version, onto every SDDC holding its item, in one wave without a VM gate. */
export async function rollback(
  image: string,
  channel: string,
  options: { wait: boolean; by?: string },
  deps: CliDeps,
): Promise<RolloutCliResult> {
  const catalog = await deps.catalog();
  const record = await catalog.channels.get(image, channel);
  const previous = record?.previous[0];
  if (!record || !previous) {
    throw new VmhubError(
      'NoPreviousVersion',
      record
        ? `channel ${channel} of ${image} has pointed only at ${record.version}: there is nothing to roll back to`
        : `${image} has no channel ${channel}`,
    );
  }
  // SDDCs removed since they got the item are no longer the rollback's to reach.
  const registered = new Set((await catalog.sddcs.list()).map((s) => s.name));
  const sddcs = (await catalog.channels.itemsOf(image, channel)).map((i) => i.sddc).filter((s) => registered.has(s));
  if (sddcs.length === 0)
    throw new VmhubError('InvalidInput', `no registered SDDC holds an item of channel ${channel} of ${image}`);
  // The channel goes back whatever some SDDCs answer: the rollback reports those it could not reach.
  const wave = { name: 'rollback', sddcs, gate: { instantiate: false, maxFailurePercent: 100 } };
  return runRollout(
    { image, version: previous, channel, waves: [wave], rollback: true, by: operatorName(options.by) },
    options.wait,
    deps,
  );
}

export function register(program: Command, deps: CliDeps): void {
  const group = program
    .command('channel')
    .description("an image's channels (stable, canary, …): set starts a rollout, list shows them");
  startOptions(
    waveOptions(
      group
        .command('set')
        .description('point a channel at a version by rolling it out in waves; exits 2 when a wave halts it or it is aborted')
        .argument('<image>')
        .argument('<channel>', 'e.g. stable or canary')
        .argument('<version>'),
    ),
  )
    .addHelpText(
      'after',
      examples(
        'vmhub channel set photon stable 5.0.1 --wave east-1 --wave east-2 --wave west-1 --approve 2',
        'vmhub channel set photon stable 5.0.1  # the waves of its rollout policy',
      ),
    )
    .action(
      async (
        image: string,
        channel: string,
        version: string,
        opts: WaveFlags & { by?: string; wait: boolean; json?: boolean },
      ) => {
        const input = {
          image: validateImageName(image),
          channel: validateChannelName(channel),
          version: validateVersion(version),
          waves: wavesOf(opts),
          by: operatorName(opts.by),
        };
        const result = await runRollout(input, opts.wait, deps);
        print(deps.io, Boolean(opts.json), result, () => renderRollout(result));
        process.exitCode = rolloutExitCode(result);
      },
    );
  group
    .command('list')
    .description("an image's channels, the versions they pointed at, and what each SDDC's channel item holds")
    .argument('<image>')
    .addOption(jsonOption())
    .action(async (image: string, opts: { json?: boolean }) => {
      const result = await list(validateImageName(image), deps);
      print(deps.io, Boolean(opts.json), result, () => renderList(result));
    });
  startOptions(
    program
      .command('rollback')
      .description("point a channel back at its previous version: each SDDC's channel item takes it from the copy it still holds")
      .argument('<image>')
      .argument('<channel>'),
  )
    .addHelpText('after', examples('vmhub rollback photon stable'))
    .action(async (image: string, channel: string, opts: { by?: string; wait: boolean; json?: boolean }) => {
      const result = await rollback(validateImageName(image), validateChannelName(channel), opts, deps);
      print(deps.io, Boolean(opts.json), result, () => renderRollout(result));
      process.exitCode = rolloutExitCode(result);
    });
}
