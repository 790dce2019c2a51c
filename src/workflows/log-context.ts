import type { WorkflowInterceptorsFactory } from '@temporalio/workflow';
import { runFields, type RunFields } from '../shared/run-fields';

/**
 * A workflow interceptor module (bundled beside the workflows: scripts/build-bundle.ts,
 * src/temporal/interceptors.ts): every line a workflow logs carries its input's image, version, SDDC and
 * location, after the SDK's workflowId and runId. It only adds log attributes, so no command changes and
 * recorded histories replay as before.
 */
export const interceptors: WorkflowInterceptorsFactory = () => {
  let fields: RunFields = {};
  return {
    inbound: [
      {
        execute(input, next) {
          fields = runFields(input.args[0]);
          return next(input);
        },
      },
    ],
    outbound: [
      {
        getLogAttributes(input, next) {
          return next({ ...input, ...fields });
        },
      },
    ],
  };
};
