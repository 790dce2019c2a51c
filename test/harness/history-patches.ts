import type { temporal } from '@temporalio/proto';

/**
 * The patches a recorded history took: the ids of its `core_patch` markers. A recording kept to guard a
 * patched path must hold that patch's marker, or its replay never runs the path.
 */
export function patchesIn(history: temporal.api.history.v1.IHistory): string[] {
  const ids = new Set<string>();
  for (const event of history.events ?? []) {
    const marker = event.markerRecordedEventAttributes;
    const data = marker?.markerName === 'core_patch' ? marker.details?.['patch-data']?.payloads?.[0]?.data : undefined;
    if (data) ids.add((JSON.parse(Buffer.from(data).toString('utf8')) as { id: string }).id);
  }
  return [...ids].sort();
}

const PUBLISH = [
  'activity-backstops',
  'publish-cancel-by-scope',
  'publish-run-owner',
  'transfer-task-queue',
  'transfer-worker-check',
];
const FAN_OUT = ['activity-backstops', 'batch-request-cancel', 'deploy-lease', 'fleet-fan-out'];
const RETIRE = ['activity-backstops', 'retire-batches', 'retire-settles-removals'];

/**
 * The histories recorded with the workflow code of the ownership, cancel-by-scope, backstop, lease,
 * batched-retire and replica-settling patches (test/harness/record-v2-histories.ts), and the patches each must have taken.
 */
export const V2_PATCHES: Record<string, string[]> = {
  'publish-with-deploy-v2.binpb': [...PUBLISH, 'publish-deploy-request-cancel', 'publish-overlap'],
  'publish-signed-v2.binpb': [...PUBLISH, 'publish-deploy-request-cancel', 'publish-overlap', 'publish-signs-provenance'],
  'publish-cancelled-v2.binpb': PUBLISH,
  'publish-no-transfer-worker-v2.binpb': PUBLISH,
  'publish-cancelled-replicating-v2.binpb': [...PUBLISH, 'publish-overlap', 'publish-cancel-settles-replicas'],
  'deploy-fanned-out-v2.binpb': FAN_OUT,
  'deploy-batch-v2.binpb': ['activity-backstops'],
  'deploy-cancelled-v2.binpb': FAN_OUT,
  'deploy-cancelled-batch-v2.binpb': ['activity-backstops', 'deploy-cancel-by-scope', 'discard-on-cancel'],
  'deploy-no-agent-batch-v2.binpb': ['activity-backstops', 'agent-quick-queue', 'no-agent-skips'],
  'deploy-all-or-nothing-v2.binpb': ['deploy-all-or-nothing', 'fleet-fan-out'],
  'deploy-batch-check-v2.binpb': ['activity-backstops', 'batch-agent-check', 'no-agent-skips'],
  'retire-fleet-v2.binpb': RETIRE,
  'retire-batch-check-v2.binpb': ['activity-backstops', 'batch-agent-check'],
  'retire-fleet-batch-v2.binpb': ['activity-backstops'],
  'retire-cancelled-v2.binpb': RETIRE,
  'retire-cancelled-batch-v2.binpb': ['activity-backstops'],
  'apply-retention-v2.binpb': ['activity-backstops', 'retention-retires-in-pool'],
  'verify-recopied-v2.binpb': ['activity-backstops', 'verify-transfer-queue'],
  'verify-hashed-v2.binpb': ['activity-backstops', 'verify-transfer-queue', 'verify-replica-content'],
  'deploy-content-library-v2.binpb': FAN_OUT,
  'deploy-content-library-batch-v2.binpb': ['library-stream-import'],
  'rollout-approved-v2.binpb': ['activity-backstops'],
  'rollout-wave-batch-v2.binpb': ['library-stream-import'],
};
