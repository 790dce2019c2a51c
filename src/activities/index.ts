import { createDeployActivities } from './deploy';
import { createHealthActivities } from './health';
import { createLifecycleActivities } from './lifecycle';
import { createOverlapActivities } from './overlap';
import { createPublishActivities, type PublishDeps } from './publish';
import { createReplicationActivities } from './replicate';
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
    ...createSigningActivities(deps),
  };
}

export type Activities = ReturnType<typeof createActivities>;
