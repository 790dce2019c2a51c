/**
 * Long transfers (staging, hashing and inspection, commit, replication) poll a task queue of their own
 * beside the control plane's, so bookkeeping that other workflows wait on never queues behind hours of
 * transfers, and each side scales by its own workers. The one place task queue names are built.
 */
export function transferTaskQueueOf(taskQueue: string): string {
  return `${taskQueue}-transfer`;
}

/** An SDDC's agent polls `sddc-<name>` unless the SDDC was registered with another task queue. */
export function agentTaskQueueOf(sddc: string): string {
  return `sddc-${sddc}`;
}
