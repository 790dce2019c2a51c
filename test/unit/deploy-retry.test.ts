import type { Client } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import type { Catalog } from '../../src/catalog/catalog';
import type { DeploymentRecord } from '../../src/catalog/deployment-records';
import { reasonType, renderRetryPlan, retryPlan, selectRetry, type RetryRow } from '../../src/cli/deploy-retry';
import type { CliDeps } from '../../src/cli/deps';
import { main } from '../../src/cli/program';
import { loadConfig } from '../../src/config';
import type { DeployInput, DeployResult } from '../../src/shared/deploy-input';
import { capture } from '../harness/cli-io';

const row = (sddc: string, status: RetryRow['status'], reason?: string): RetryRow => ({
  sddc,
  status,
  ...(reason ? { reason } : {}),
});

describe('deploy --retry: which SDDCs are deployed again', () => {
  it('every failed and skipped SDDC, except one refused by its OVF policy or the signed provenance; none that has the image', () => {
    const rows = [
      row('ok-1', 'deployed'),
      row('ok-2', 'already-present'),
      row('no-agent', 'skipped', 'no agent: nothing polled task queue sddc-no-agent in the last five minutes'),
      row('small', 'skipped', 'does not fit: memory 16 MiB, needs 32 MiB'),
      row('link', 'failed', 'InvalidInput: the directory is a link'),
      row('timeout', 'failed', 'activity StartToClose timeout'),
      row('policy', 'failed', 'PolicyRefused: SDDC policy requires a manifest, and the image has none'),
      row('unsigned', 'failed', 'UnsignedImage: the version has no signed provenance there'),
      row('untrusted', 'failed', 'UntrustedSignature: signed by no trusted key'),
      row('changed', 'failed', 'ProvenanceMismatch: the signed statement says other bytes'),
      row('cert', 'failed', 'CertificateInvalid: certificate "a.cert" signs another manifest'),
    ];
    const { retried, final } = selectRetry(rows);
    expect(retried.map((r) => r.sddc)).toEqual(['no-agent', 'small', 'link', 'timeout']);
    expect(final.map((r) => r.sddc)).toEqual(['policy', 'unsigned', 'untrusted', 'changed', 'cert']);
  });

  it('a skipped row is never final, whatever its reason says; an SDDC listed twice counts once, as first listed', () => {
    const { retried, final } = selectRetry([
      row('a', 'skipped', 'PolicyRefused: preflight'),
      row('b', 'failed', 'NoAgent: all or nothing'),
      row('b', 'failed', 'PolicyRefused: a later record'),
    ]);
    expect(retried).toEqual([row('a', 'skipped', 'PolicyRefused: preflight'), row('b', 'failed', 'NoAgent: all or nothing')]);
    expect(final).toEqual([]);
  });

  it('reads the type only from the `Type: ` a typed failure starts with', () => {
    expect(reasonType('PolicyRefused: SDDC x requires a manifest')).toBe('PolicyRefused');
    expect(reasonType('no agent: nothing polled')).toBeUndefined();
    expect(reasonType('cancelled: the agent stopped')).toBeUndefined();
    expect(reasonType(undefined)).toBeUndefined();
  });

  it('says what it deploys again, what it leaves and why, and when there is nothing to retry', () => {
    const plan = {
      retryOf: 'deploy:app:1.0.0:x',
      image: 'app',
      version: '1.0.0',
      options: {},
      retried: [row('east-2', 'skipped', 'no agent: nothing polled')],
      final: [row('east-3', 'failed', 'PolicyRefused: SDDC east-3 requires a manifest')],
    };
    const lines = renderRetryPlan(plan, true);
    expect(lines[0]).toBe('retry of deploy:app:1.0.0:x: would deploy again app@1.0.0 to 1 SDDC:');
    expect(lines).toContainEqual(expect.stringMatching(/^ {2}east-2 +skipped +no agent: nothing polled$/));
    expect(lines).toContainEqual(expect.stringMatching(/^not retried, final .*: 1 SDDC:$/));
    expect(lines).toContainEqual(expect.stringMatching(/^ {2}east-3 +failed +PolicyRefused: SDDC east-3 requires a manifest$/));
    expect(lines[lines.length - 1]).toBe('nothing started (--dry-run)');
    expect(renderRetryPlan({ ...plan, retried: [], final: [] }, false)).toEqual([
      'nothing to retry: every SDDC was deployed or already present',
    ]);
  });
});

/** Deps whose Temporal knows one deploy run, described, finished and started as given. */
function depsOf(run: {
  status: string;
  type?: string;
  result?: DeployResult;
  input?: DeployInput;
  records?: DeploymentRecord[];
}): { deps: CliDeps; asked: string[] } {
  const asked: string[] = [];
  const handle = {
    workflowId: 'deploy:app:1.0.0:x',
    describe: async () => ({ type: run.type ?? 'DeployToSDDCs', status: { name: run.status }, runId: 'r1' }),
    result: async () => run.result,
    fetchHistory: async () => ({
      events: [
        { workflowExecutionStartedEventAttributes: { input: { payloads: [defaultPayloadConverter.toPayload(run.input)] } } },
      ],
    }),
  };
  const client = { workflow: { getHandle: () => handle } } as unknown as Client;
  const catalog = {
    deployments: {
      unfinishedBy: async (image: string, version: string, workflowId: string) => {
        asked.push(`${image}@${version} ${workflowId}`);
        return run.records ?? [];
      },
    },
  } as unknown as Catalog;
  return { deps: { config: loadConfig(), temporal: async () => client, catalog: async () => catalog, io: capture() }, asked };
}

describe('deploy --retry: reading the run', () => {
  it('a deploy still running is refused (DeployRunning), naming how to follow it', async () => {
    const { deps } = depsOf({ status: 'RUNNING' });
    await expect(retryPlan('deploy:app:1.0.0:x', deps)).rejects.toMatchObject({
      type: 'DeployRunning',
      message: expect.stringContaining('vmhub wait deploy:app:1.0.0:x'),
    });
  });

  it('a run of another type is refused', async () => {
    const { deps } = depsOf({ status: 'COMPLETED', type: 'PublishImage' });
    await expect(retryPlan('deploy:app:1.0.0:x', deps)).rejects.toMatchObject({ type: 'InvalidInput' });
  });

  it("keeps the resolved version and the run's options; a result that left rows out is completed from the catalog", async () => {
    const at = new Date();
    const record = (sddc: string, status: 'failed' | 'skipped', error: string): DeploymentRecord => ({
      image: 'app',
      version: '1.0.0',
      sddc,
      status,
      error,
      updatedAt: at,
    });
    const { deps, asked } = depsOf({
      status: 'COMPLETED',
      input: { image: 'app', version: 'latest', sddcs: 'all', force: true, instantiate: true },
      result: {
        image: 'app',
        version: '1.0.0',
        results: [{ sddc: 's-1', dataCenter: 'dc', status: 'skipped', source: null, reason: 'no agent: x' }],
        counts: { deployed: 500, skipped: 101, failed: 1 },
        rowsOmitted: 2,
      },
      records: [
        record('s-1', 'skipped', 'no agent: x'),
        record('s-2', 'skipped', 'no agent: y'),
        record('s-3', 'failed', 'PolicyRefused: z'),
      ],
    });
    const plan = await retryPlan('deploy:app:1.0.0:x', deps);
    expect(asked).toEqual(['app@1.0.0 deploy:app:1.0.0:x']);
    expect(plan).toMatchObject({
      retryOf: 'deploy:app:1.0.0:x',
      image: 'app',
      version: '1.0.0',
      options: { force: true, instantiate: true },
    });
    expect(plan.retried.map((r) => r.sddc)).toEqual(['s-1', 's-2']);
    expect(plan.final).toEqual([row('s-3', 'failed', 'PolicyRefused: z')]);
  });
});

describe('deploy --retry on the command line', () => {
  it.each([
    [['deploy', 'app@1.0.0', '--retry', 'deploy:app:1.0.0:x']],
    [['deploy', '--retry', 'deploy:app:1.0.0:x', '--to', 'east-1']],
  ])('%j: refused with an image@version or --to, before reaching a service', async (args) => {
    const io = capture();
    await main(['node', 'vmhub', ...args, '--address', '127.0.0.1:1'], io);
    expect(io.stderr).toBe(
      "vmhub: UsageError: --retry deploys the run's own version to its own SDDCs: give neither image@version nor --to\n",
    );
    expect(process.exitCode).toBe(1);
    process.exitCode = 0;
  });

  it('without --retry, an image@version is still required', async () => {
    const io = capture();
    await main(['node', 'vmhub', 'deploy', '--to', 'east-1', '--address', '127.0.0.1:1'], io);
    expect(io.stderr).toMatch(/^vmhub: UsageError: missing required argument 'ref'/);
    process.exitCode = 0;
  });
});
