import { confirm } from '../../src/cli/confirm';
import { renderPreview, type DeployPreviewRow } from '../../src/cli/deploy-preview';
import { CliError } from '../../src/cli/errors';
import type { CliIo } from '../../src/cli/output';
import { renderText as renderRetention } from '../../src/cli/retention-apply';
import { renderPreview as renderRetirePreview } from '../../src/cli/retire';

/** An io whose terminal answers `answer` (or that has no terminal), recording the questions asked. */
function terminal(answer?: string): CliIo & { asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    out: () => undefined,
    err: () => undefined,
    progress: process.stderr,
    tty: false,
    ...(answer === undefined ? {} : { ask: async (q: string) => (asked.push(q), answer) }),
  };
}

async function refusal(io: CliIo): Promise<CliError> {
  const err = await confirm(io, 'retire app@1.0.0 from 2 SDDCs and 2 storage locations?', 'pass --yes').then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CliError);
  return err as CliError;
}

describe('confirm', () => {
  it.each(['y', 'Y', 'yes', ' YES \n'])('goes on when the operator answers %j', async (answer) => {
    const io = terminal(answer);
    await expect(confirm(io, 'retire app@1.0.0 from 2 SDDCs and 2 storage locations?', 'pass --yes')).resolves.toBeUndefined();
    expect(io.asked).toEqual(['retire app@1.0.0 from 2 SDDCs and 2 storage locations? [y/N] ']);
  });

  it.each(['', 'n', 'no', 'yess', 'sure'])('stops when the operator answers %j: no is the default', async (answer) => {
    const err = await refusal(terminal(answer));
    expect([err.type, err.message]).toEqual(['NotConfirmed', 'not confirmed; nothing was changed']);
  });

  it('refuses with the advice, asking nothing, where there is no terminal', async () => {
    const err = await refusal(terminal());
    expect([err.type, err.message]).toEqual(['NotConfirmed', 'pass --yes']);
  });
});

describe('preview renderers', () => {
  const row = (sddc: string, action: DeployPreviewRow['action'], more: Partial<DeployPreviewRow> = {}): DeployPreviewRow => ({
    sddc,
    dataCenter: 'dc-east',
    action,
    into: "a directory of its agent's datastore",
    sources: [],
    bytesToMove: 0,
    reusesVersion: null,
    reason: null,
    ...more,
  });

  it('deploy --dry-run: a headline counting each outcome, and a row per SDDC', () => {
    const lines = renderPreview({
      dryRun: true,
      image: 'app',
      version: '1.1.0',
      sizeBytes: 8 * 2 ** 20,
      results: [
        row('east-1', 'deploy', { sources: ['east-primary', 'west-replica'], bytesToMove: 4 * 2 ** 20, reusesVersion: '1.0.0' }),
        row('east-2', 'already-present'),
        row('east-3', 'skipped', { reason: 'does not fit: 8 CPUs needed, 4 available' }),
        row('east-4', 'no-agent', { reason: 'no agent has polled sddc-east-4 in the last 75 s' }),
        row('east-5', 'refused', { reason: 'PolicyRefused: SDDC east-5 requires a manifest, and the image has none' }),
      ],
      counts: { deploy: 1, 'already-present': 1, skipped: 1, 'no-agent': 1, refused: 1 },
      bytesToMove: 4 * 2 ** 20,
      refusals: ['NoWorker: no worker has polled task queue vm-images in the last 75 s'],
    });
    expect(lines).toEqual([
      'deploying app@1.1.0 (8.0 MiB) to 5 SDDCs would deploy 1 (4.0 MiB to move), find 1 already present, skip 1, find no live agent for 1, refuse 1 by its OVF policy; nothing was started',
      'SDDC    DATA CENTER  WOULD            TO MOVE  DETAILS',
      "east-1  dc-east      deploy           4.0 MiB  from east-primary, then west-replica (the rest copied from 1.0.0 on the SDDC) into a directory of its agent's datastore",
      'east-2  dc-east      already present  -        per the catalog; the agent checks again when it deploys',
      'east-3  dc-east      skip             -        does not fit: 8 CPUs needed, 4 available',
      'east-4  dc-east      no agent         -        no agent has polled sddc-east-4 in the last 75 s',
      'east-5  dc-east      refuse           -        PolicyRefused: SDDC east-5 requires a manifest, and the image has none',
      'the deploy would be refused now: NoWorker: no worker has polled task queue vm-images in the last 75 s',
    ]);
  });

  it('retire --dry-run of a retired version, and retention with nothing to retire, say so', () => {
    expect(
      renderRetirePreview({
        image: 'app',
        version: '1.0.0',
        status: 'retired',
        sizeBytes: 1,
        sddcs: [],
        storage: [],
        bytes: { sddcs: 0, storage: 0 },
        refusals: [],
      }),
    ).toEqual(['app@1.0.0 is retired already: a retire would remove nothing']);
    expect(renderRetention({ dryRun: true, image: 'app', versions: [], bytes: { sddcs: 0, storage: 0 }, limit: 100 })).toEqual([
      'retention would retire nothing now of app; nothing was changed',
    ]);
  });

  it('retention apply lists what it retired and what failed', () => {
    expect(
      renderRetention({
        dryRun: false,
        workflowId: 'retention:all:1a2b3c4d',
        retired: ['app@1.0.0'],
        failed: [{ ref: 'app@1.1.0', reason: 'DeployRunning: app@1.1.0 is being deployed by deploy:app:1.1.0:x' }],
      }),
    ).toEqual([
      'retired 1 version under retention policies  (workflow retention:all:1a2b3c4d)',
      '  app@1.0.0',
      '1 retire failed:',
      '  app@1.1.0: DeployRunning: app@1.1.0 is being deployed by deploy:app:1.1.0:x',
    ]);
  });
});
