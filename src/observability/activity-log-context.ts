import type { ActivityInterceptorsFactory } from '@temporalio/worker';
import { runFields, type RunFields } from '../shared/run-fields';

/**
 * An activity interceptor: every line an activity logs (its own through `log` from @temporalio/activity,
 * and the SDK's about it) carries its input's image, version, SDDC and location beside the SDK's
 * activityType, attempt and workflowId. The workflow's run ID is named `runId`, as on workflow lines,
 * so one `jq` filter follows a run through both; the task token is left out: it would let a reader
 * complete the activity, and says nothing the other fields do not.
 */
export const activityLogContext: ActivityInterceptorsFactory = () => {
  let fields: RunFields = {};
  return {
    inbound: {
      execute(input, next) {
        fields = runFields(input.args[0]);
        return next(input);
      },
    },
    outbound: {
      getLogAttributes(input, next) {
        const { taskToken: _taskToken, workflowRunId, ...rest } = input;
        return next({ ...rest, ...(workflowRunId === undefined ? {} : { runId: workflowRunId }), ...fields });
      },
    },
  };
};
