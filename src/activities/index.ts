import { createDeployActivities } from './deploy';
import { createHealthActivities } from './health';
import { createLifecycleActivities } from './lifecycle';
import { createOperatorCheckActivities } from './operator-check';
import { createOverlapActivities } from './overlap';
import { createPublishActivities, type PublishDeps } from './publish';
import { createReplicationActivities } from './replicate';
import { createRolloutActivities } from './rollout';
import { createSigningActivities } from './sign';

export type ActivityDeps = PublishDeps;

/** Every control-plane activity, built around the clients the worker owns. */
export function createActivities(deps: ActivityDeps) {
  return {
    ...createPublishActivities(deps),
    ...createHealthActivities(deps),
    ...createReplicationActivities(deps),
    ...createDeployActivities(deps),
    ...createLifecycleActivities(deps),
    ...createOverlapActivities(deps),
    ...createOperatorCheckActivities(deps),
    ...createSigningActivities(deps),
    ...createRolloutActivities(deps),
  };
}

export type Activities = ReturnType<typeof createActivities>;
