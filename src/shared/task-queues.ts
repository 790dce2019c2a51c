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

/**
 * An agent's quick operations (lookups, discards, removals) poll `<taskQueue>-quick` beside its long queue
 * (`taskQueue`, the one the SDDC is registered with): a few free slots there never wait behind hours of
 * downloads, and an agent whose long slots are all busy still polls, so it is seen alive.
 */
export function agentQuickTaskQueueOf(taskQueue: string): string {
  return `${taskQueue}-quick`;
}
