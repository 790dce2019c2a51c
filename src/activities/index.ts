import { createHealthActivities } from './health';
import { createPublishActivities, type PublishDeps } from './publish';

export type ActivityDeps = PublishDeps;

/** Every control-plane activity, built around the clients the worker owns. */
export function createActivities(deps: ActivityDeps) {
  return {
    ...createPublishActivities(deps),
    ...createHealthActivities(deps),
  };
}

export type Activities = ReturnType<typeof createActivities>;
