import { randomUUID } from 'node:crypto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Activities } from '../../src/activities';
import type { AgentActivities } from '../../src/activities/agent';
import type { DriftActivities } from '../../src/activities/drift';
import type { AgentLifecycleActivities } from '../../src/activities/lifecycle';
import type { DeployResultRow } from '../../src/shared/deploy-input';
import type { CopyToCheck, DriftFinding, SddcPage, VerifySddcsResult } from '../../src/shared/drift-input';
import { retirePlan } from '../harness/lifecycle-mocks';
import { deployActivities, deployedDownload, runWorker, startTestEnvironment } from '../harness/mock-activities';

/** VerifySddcs on the time-skipping test server with mocked activities: what it reports, marks and repairs, page by page. */
let env: TestWorkflowEnvironment;
beforeAll(async () => {
  env = await startTestEnvironment();
}, 120_000);
afterAll(() => env?.teardown());

const copy = (version: string): CopyToCheck => ({
  image: 'app',
  version,
  format: 'iso',
  sha256: 'a'.repeat(64),
  sizeBytes: 1024,
});
const finding = (sddc: string, version: string, kind: DriftFinding['kind']): DriftFinding => ({
  sddc,
  image: 'app',
  version,
  kind,
  detail: `${kind} on ${sddc}`,
});

/** dir-1 (live agent, one copy missing, one edited) and gone-1 (no agent) on the first page; lib-1 (whole) on the second. */
function scenario(log: string[], agentQueue: string) {
  const pages: Record<string, SddcPage> = {
    first: {
      sddcs: [
        { name: 'dir-1', taskQueue: agentQueue, copies: [copy('1.0.0'), copy('1.1.0')] },
        { name: 'gone-1', taskQueue: 'gone-queue', copies: [copy('1.0.0')] },
      ],
      next: { sddc: 'gone-1' },
    },
    second: {
      sddcs: [
        {
          name: 'lib-1',
          taskQueue: agentQueue,
          target: retirePlan(agentQueue).sddcs[1].target,
          copies: [copy('1.0.0')],
        },
      ],
    },
  };
  const control: Partial<Activities> = {
    sddcsToCheck: async ({ after }) => {
      log.push(`page after ${after?.sddc ?? 'start'}`);
      return after === undefined ? pages.first : pages.second;
    },
    agentsPollingEach: async ({ taskQueues }) =>
      Object.fromEntries(taskQueues.map((q) => [q, { long: q === agentQueue ? 1 : 0, quick: 0 }])),
    markDrifted: async ({ findings }) => {
      log.push(`marked ${findings.map((f) => `${f.sddc} ${f.version} ${f.kind}`).join(', ')}`);
      return findings.length;
    },
  };
  const agent: Partial<DriftActivities & AgentLifecycleActivities & AgentActivities> = {
    listDrift: async ({ sddc, copies, library }) => {
      log.push(`list ${sddc}${library ? ' library' : ''}`);
      if (sddc !== 'dir-1') return { findings: [], toHash: copies };
      return { findings: [finding('dir-1', '1.0.0', 'missing')], toHash: copies.filter((c) => c.version === '1.1.0') };
    },
    hashDrift: async ({ sddc, copies, budgetBytes }) => {
      log.push(`hash ${sddc} ${copies.map((c) => c.version).join(',')} within ${budgetBytes}`);
      const findings = sddc === 'dir-1' ? [finding('dir-1', '1.1.0', 'edited')] : [];
      return { findings, hashed: copies.length, deferred: 0, bytesHashed: 1024 * copies.length };
    },
    removeDeployedCopy: async ({ sddc, version }) => {
      log.push(`remove ${sddc} ${version}`);
      return { removed: [] };
    },
    downloadImage: async (input) => {
      log.push(`download ${input.sddc} ${input.version}`);
      return deployedDownload();
    },
  };
  return { control, agent };
}

async function verify(log: string[], input: object, rows: DeployResultRow[] = []): Promise<VerifySddcsResult> {
  const agentQueue = `sddc-${randomUUID()}`;
  const { control, agent } = scenario(log, agentQueue);
  return runWorker(
    env,
    { ...deployActivities(rows, agentQueue, ['dir-1'], 1), ...control },
    (taskQueue) =>
      env.client.workflow.execute('VerifySddcs', {
        args: [input],
        taskQueue,
        workflowId: randomUUID(),
      }) as Promise<VerifySddcsResult>,
    { taskQueue: agentQueue, activities: agent as Partial<AgentActivities> },
  );
}

describe('VerifySddcs', () => {
  it('lists on the agents, hashes the rest within the budget, marks what drifted, reports an SDDC without agent, and pages', async () => {
    const log: string[] = [];
    const result = await verify(log, { hashBudgetBytes: 4096 });
    expect(log.filter((l) => l.startsWith('page'))).toEqual(['page after start', 'page after gone-1']);
    expect(log).toContain('hash dir-1 1.1.0 within 4096');
    expect(log).toContain('list lib-1 library');
    expect(log.filter((l) => l.startsWith('marked'))).toEqual(['marked dir-1 1.0.0 missing, dir-1 1.1.0 edited']);
    expect(log.some((l) => l.startsWith('remove') || l.startsWith('download'))).toBe(false);
    expect(result).toMatchObject({
      sddcsChecked: 3,
      copiesChecked: 4,
      copiesHashed: 2,
      copiesDeferred: 0,
      findingsTotal: 3,
      repaired: 0,
    });
    expect(result.findings.map((f) => [f.sddc, f.version, f.kind, f.repaired])).toEqual([
      ['dir-1', '1.0.0', 'missing', undefined],
      ['dir-1', '1.1.0', 'edited', undefined],
      ['gone-1', '1.0.0', 'not-checked', undefined],
    ]);
    expect(result.findings[2].detail).toMatch(/no agent has polled gone-queue/);
  });

  it('with repair, deploys the same version again to the SDDC without removing its copy first (the deploy replaces it)', async () => {
    const log: string[] = [];
    const rows: DeployResultRow[] = [];
    const result = await verify(log, { repair: true }, rows);
    expect(log.some((l) => l.startsWith('remove'))).toBe(false);
    expect(log.indexOf('download dir-1 1.0.0')).toBeGreaterThan(log.findIndex((l) => l.startsWith('marked')));
    expect(rows.map((r) => [r.sddc, r.status])).toEqual([
      ['dir-1', 'deployed'],
      ['dir-1', 'deployed'],
    ]);
    expect(result).toMatchObject({ repaired: 2, unrepaired: 0 });
    expect(result.findings.filter((f) => f.sddc === 'dir-1').map((f) => f.repaired)).toEqual([true, true]);
  });

  it('marks drift in chunks of at most 100 and counts every unrepaired finding, beyond the 100 listed', async () => {
    const agentQueue = `sddc-${randomUUID()}`;
    const many = Array.from({ length: 250 }, (_, i) => copy(`1.0.${i}`));
    const marked: number[] = [];
    const control: Partial<Activities> = {
      sddcsToCheck: async () => ({ sddcs: [{ name: 'dir-1', taskQueue: agentQueue, copies: many }] }),
      agentsPollingEach: async () => ({ [agentQueue]: { long: 1, quick: 0 } }),
      markDrifted: async ({ findings }) => {
        marked.push(findings.length);
        return findings.length;
      },
    };
    const agent: Partial<DriftActivities> = {
      listDrift: async ({ copies }) => ({ findings: copies.map((c) => finding('dir-1', c.version, 'missing')), toHash: [] }),
    };
    const result = await runWorker(
      env,
      control,
      (taskQueue) =>
        env.client.workflow.execute('VerifySddcs', {
          args: [{}],
          taskQueue,
          workflowId: randomUUID(),
        }) as Promise<VerifySddcsResult>,
      { taskQueue: agentQueue, activities: agent as Partial<AgentActivities> },
    );
    expect(marked).toEqual([100, 100, 50]);
    expect(result).toMatchObject({ findingsTotal: 250, unrepaired: 250, sddcsChecked: 1, copiesChecked: 250 });
    expect(result.findings).toHaveLength(100);
  });
});
