import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import type { AgentActivities } from '../../src/activities/agent';
import type { ContentLibraryActivities } from '../../src/activities/content-library';
import type { AgentLifecycleActivities } from '../../src/activities/lifecycle';
import { buildBundle } from '../../scripts/build-bundle';
import { retireAgent, retireControl, retirePlan, retireRef, verifyControl } from './lifecycle-mocks';
import { runWorker, startTestEnvironment } from './mock-activities';

/**
 * Records the lifecycle workflows' histories beside the others in test/histories, which
 * test/workflows/replay.test.ts replays: a retire from a directory and a content-library SDDC, and the
 * first run of a VerifyReplicas that repairs a replica on its next page (it ends by continuing as new).
 * Since removals settle (the `retire-settles-removals` patch), also a retire whose content-library SDDC
 * fails, ending with RetireIncomplete. Adds to workflow-ids.json and records only the histories not kept
 * yet. Run it (`npx tsx test/harness/record-lifecycle-histories.ts`) only to add histories of new behaviour.
 */
async function main(): Promise<void> {
  const bundlePath = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'vmhub-record-')), 'bundle.js');
  await buildBundle(bundlePath);
  process.env.VMHUB_WORKFLOW_BUNDLE = bundlePath;
  const env = await startTestEnvironment();
  const out = path.join(__dirname, '..', 'histories');
  const indexFile = path.join(out, 'workflow-ids.json');
  const index = JSON.parse(fs.readFileSync(indexFile, 'utf8')) as Record<string, string>;
  const save = async (name: string, workflowId: string, runId?: string) => {
    const history = await env.client.workflow.getHandle(workflowId, runId).fetchHistory();
    fs.writeFileSync(path.join(out, `${name}.binpb`), temporal.api.history.v1.History.encode(history).finish());
    index[`${name}.binpb`] = workflowId;
    fs.writeFileSync(indexFile, `${JSON.stringify(index, null, 2)}\n`);
    process.stderr.write(`recorded ${name}: ${history.events?.length} events\n`);
  };
  const kept = (name: string) => fs.existsSync(path.join(out, `${name}.binpb`));
  try {
    const agentQueue = `sddc-${randomUUID()}`;
    const control = { ...retireControl([], agentQueue, async () => retirePlan(agentQueue)), ...verifyControl([], []) };
    const agent = retireAgent([]) as Partial<AgentLifecycleActivities & ContentLibraryActivities>;
    // lib-1's library item cannot be removed: dir-1's copy still is, and the run fails with RetireIncomplete.
    agent.removeLibraryItem = async () => {
      throw ApplicationFailure.nonRetryable('vCenter refused the login', 'VcenterLoginFailed');
    };
    await runWorker(
      env,
      control,
      async (taskQueue) => {
        if (!kept('retire')) {
          const retireId = `retire:app:1.0.0`;
          await env.client.workflow.execute('RetireImage', { args: [retireRef], taskQueue, workflowId: retireId });
          await save('retire', retireId);
        }
        if (!kept('verify-continued')) {
          const verifyId = `verify:all:${randomUUID().slice(0, 8)}`;
          const first = await env.client.workflow.start('VerifyReplicas', { args: [{}], taskQueue, workflowId: verifyId });
          await first.result();
          await save('verify-continued', verifyId, first.firstExecutionRunId);
        }
        if (!kept('retire-incomplete')) {
          const retireId = `retire:app:1.0.0:incomplete`;
          await env.client.workflow
            .execute('RetireImage', { args: [retireRef], taskQueue, workflowId: retireId })
            .catch((err: unknown) =>
              process.stderr.write(`the retire failed as meant: ${((err as Error).cause as Error | undefined)?.message}\n`),
            );
          await save('retire-incomplete', retireId);
        }
      },
      { taskQueue: agentQueue, activities: agent as Partial<AgentActivities> },
    );
  } finally {
    await env.teardown();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack}\n`);
  process.exit(1);
});
