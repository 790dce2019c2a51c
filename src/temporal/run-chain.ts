import type { WorkflowExecutionDescription } from '@temporalio/client';

/** Whether a described run is `runId` or continues its chain (a reset or continue-as-new keeps the chain's first run). */
export function isOfChain(current: WorkflowExecutionDescription, runId: string): boolean {
  return current.runId === runId || current.raw.workflowExecutionInfo?.firstRunId === runId;
}
