import { activityInfo } from '@temporalio/activity';
import type { ChannelRecord } from '../catalog/channel-records';
import { findOperatorCheck } from '../deploy/operator-check';
import { planRollout } from '../deploy/rollout-plan';
import { withFailures } from '../shared/failures';
import type { RolloutInput, RolloutPlan } from '../shared/rollout-input';
import type { PublishDeps } from './publish';

/** Control-plane side of Rollout: resolve its waves against the catalog, and move the channel once they passed. */
export function createRolloutActivities({ catalog, config }: Pick<PublishDeps, 'catalog' | 'config'>) {
  return {
    async planRollout(input: RolloutInput): Promise<RolloutPlan> {
      // A wave's operator check must be one this worker defines before any SDDC makes a VM for it.
      return withFailures(() => planRollout(catalog, input, (name) => findOperatorCheck(config.operatorChecksFile, name)));
    },

    /** Of these SDDCs, those whose item of the channel the catalog says holds the version. */
    async channelItemsHolding(input: { image: string; channel: string; version: string; sddcs: string[] }): Promise<string[]> {
      return withFailures(async () => {
        const wanted = new Set(input.sddcs);
        const items = await catalog.channels.itemsOf(input.image, input.channel);
        return items.filter((i) => i.version === input.version && wanted.has(i.sddc)).map((i) => i.sddc);
      });
    },

    /** Points the channel at the version; for a rollback, at the version it pointed at before. */
    async pointChannel(input: {
      image: string;
      channel: string;
      version: string;
      rollback?: boolean;
      by?: string;
    }): Promise<Pick<ChannelRecord, 'version' | 'previous'>> {
      return withFailures(async () => {
        const { image, channel, version, rollback, by } = input;
        const record = await catalog.channels.point(image, channel, version, {
          rollback,
          by,
          rollout: activityInfo().workflowExecution,
        });
        return { version: record.version, previous: record.previous };
      });
    },
  };
}
