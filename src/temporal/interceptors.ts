import type { WorkerInterceptors, WorkerOptions } from '@temporalio/worker';
import { activityLogContext } from '../observability/activity-log-context';

/**
 * The interceptors every vmhub worker runs. Workflow interceptor modules are bundled with the workflow
 * code: into the prebuilt bundle by scripts/build-bundle.ts, or by the worker when it bundles the sources
 * at start; a worker given a prebuilt bundle must not name them again (the SDK ignores them, with a warning).
 */
export const WORKFLOW_INTERCEPTOR_MODULES: string[] = [
  require.resolve('../workflows/log-context'),
  require.resolve('../workflows/tracing-interceptors'),
];

export function workerInterceptors(source: Pick<WorkerOptions, 'workflowsPath'> = {}): WorkerInterceptors {
  return {
    activity: [activityLogContext],
    ...(source.workflowsPath ? { workflowModules: WORKFLOW_INTERCEPTOR_MODULES } : {}),
  };
}
