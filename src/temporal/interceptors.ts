import type { WorkerInterceptors, WorkerOptions } from '@temporalio/worker';
import { activityLogContext } from '../observability/activity-log-context';

/**
 * The interceptors every vmhub worker runs. Workflow interceptor modules are bundled with the workflow
 * code: into the prebuilt bundle by scripts/build-bundle.ts, or by the worker when it bundles the sources
 * at start (`workflowSource`); a worker given a prebuilt bundle must not name them again (the SDK ignores
 * them, with a warning).
 */
export const WORKFLOW_INTERCEPTOR_MODULES: string[] = [
  require.resolve('../workflows/log-context'),
  require.resolve('../workflows/tracing-interceptors'),
];

/** Every worker's interceptors; a workflow worker passes its `workflowSource()`, which names the workflow modules when it bundles. */
export function workerInterceptors(source: Pick<WorkerOptions, 'interceptors'> = {}): WorkerInterceptors {
  return { ...source.interceptors, activity: [activityLogContext] };
}
