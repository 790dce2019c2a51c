/**
 * Long transfers (staging, hashing and inspection, commit, replication) poll a task queue of their own
 * beside the control plane's, so bookkeeping that other workflows wait on never queues behind hours of
 * transfers, and each side scales by its own workers. Plain: the workflow bundle imports this.
 */
export function transferTaskQueueOf(taskQueue: string): string {
  return `${taskQueue}-transfer`;
}
