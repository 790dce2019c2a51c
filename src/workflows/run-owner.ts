import { workflowInfo } from '@temporalio/workflow';
import type { RunRef } from '../catalog/image-records';

/**
 * The owner this workflow's claims name: its workflow ID and the first run of its chain. A Workflow Reset
 * and a continue-as-new keep both, so the run that resumes still owns what the earlier one claimed; a new
 * start of the same workflow ID is a new owner.
 */
export function runOwner(): RunRef {
  const { workflowId, firstExecutionRunId } = workflowInfo();
  return { workflowId, runId: firstExecutionRunId };
}
