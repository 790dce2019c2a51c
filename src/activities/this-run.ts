import { activityInfo } from '@temporalio/activity';
import type { RunRef } from '../catalog/image-records';

/** The owner a claiming activity acts for: the workflow's (runOwner()), else (runs started before it was passed) this run. */
export function ownerOf(input: { owner?: RunRef }): RunRef {
  return input.owner ?? thisRun();
}

/** The workflow run this activity works for: the owner a claim records. */
export function thisRun(): RunRef {
  const run = activityInfo().workflowExecution;
  if (!run) throw new Error(`activity ${activityInfo().activityType} runs only inside a workflow`);
  return { workflowId: run.workflowId, runId: run.runId };
}
