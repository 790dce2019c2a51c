import type { Activities } from '../../src/activities';
import type { AgentActivities } from '../../src/activities/agent';
import type { AgentLifecycleActivities, RetirePlan } from '../../src/activities/lifecycle';
import type { ContentLibraryActivities } from '../../src/activities/content-library';

/**
 * Mocked activities for RetireImage, VerifyReplicas and ApplyRetention: shared by their fast workflow
 * tests and by the recording of their histories.
 */
export const retireRef = { image: 'app', version: '1.0.0' };

/** A retire of app@1.0.0 from a directory SDDC and a content-library SDDC, both served by one agent queue. */
export function retirePlan(agentQueue: string): Extract<RetirePlan, { state: 'retiring' }> {
  return {
    state: 'retiring',
    ...retireRef,
    format: 'iso',
    sha256: 'a'.repeat(64),
    sizeBytes: 1024,
    blob: 'app/1.0.0/app-1.0.0.iso',
    locations: ['east-primary', 'west-replica'],
    sddcs: [
      { sddc: 'dir-1', taskQueue: agentQueue },
      {
        sddc: 'lib-1',
        taskQueue: agentQueue,
        target: {
          kind: 'content-library',
          vcenter: 'https://vc.example.com/',
          library: 'vmhub',
        },
      },
    ],
  };
}

/** The control side of a retire; beginRetire decides the outcome, every step is logged. */
export function retireControl(log: string[], agentQueue: string, beginRetire: Activities['beginRetire']): Partial<Activities> {
  return {
    beginRetire: async (input) => {
      log.push('begin');
      const p = await beginRetire(input);
      return p.state === 'retiring' ? retirePlan(agentQueue) : p;
    },
    agentsPolling: async () => 1,
    removeBlob: async ({ location }) => {
      log.push(`blob ${location}`);
      return { removed: true };
    },
    recordRemoval: async ({ sddc }) => {
      log.push(`recorded ${sddc}`);
    },
    recordRemovals: async ({ sddcs }) => {
      for (const sddc of sddcs) log.push(`recorded ${sddc}`);
    },
    finishRetire: async () => {
      log.push('tombstone');
    },
    abandonRetire: async () => {
      log.push('abandon');
    },
  };
}

/** The agent side of a retire: it removes a file from every SDDC, and the item from a library. */
export function retireAgent(log: string[]): Partial<AgentActivities> {
  const agent: Partial<AgentLifecycleActivities & ContentLibraryActivities> = {
    removeDeployedCopy: async ({ sddc }) => {
      log.push(`file ${sddc}`);
      return { removed: [`/ds/${sddc}/app-1.0.0.iso`] };
    },
    removeLibraryItem: async ({ sddc }) => {
      log.push(`item ${sddc}`);
      return {
        removed: {
          kind: 'content-library',
          vcenter: 'https://vc.example.com/',
          library: 'vmhub',
          itemId: 'item-1',
          itemName: 'app-1.0.0',
        },
      };
    },
  };
  // The agent worker takes every activity family its SDDC's real agent registers.
  return agent as Partial<AgentActivities>;
}

/**
 * One check of a replica as both activities that check one: the label and etag check that runs before
 * the verify-replica-content patch (and that recorded histories hold), and the hash of its bytes after.
 */
export function replicaChecks(
  check: Activities['verifyReplicaContent'],
): Pick<Activities, 'checkReplica' | 'verifyReplicaContent'> {
  return { checkReplica: check, verifyReplicaContent: check };
}

/**
 * VerifyReplicas over app 1.0.0 and 2.0.0 on two replicas, where only 2.0.0 on `stale` differs and is
 * copied again; each copy is noted in `replicated` as `note` words it.
 */
export function staleReplicaControl(
  stale: string,
  replicated: string[],
  note: (version: string, replica: string) => string = (version, replica) => `${version} ${replica}`,
): Partial<Activities> {
  return {
    versionsToVerify: async () => ({
      versions: [
        { image: 'app', version: '1.0.0' },
        { image: 'app', version: '2.0.0' },
      ],
      replicas: ['west-replica', 'north-replica'],
    }),
    ...replicaChecks(async ({ version, location: replica }) =>
      version === '2.0.0' && replica === stale
        ? { location: replica, status: 'stale', reason: 'committed block 1 differs' }
        : { location: replica, status: 'verified' },
    ),
    replicateImage: async ({ version, location: replica }) => {
      replicated.push(note(version, replica));
      return { location: replica, status: 'verified' };
    },
  };
}

/** Two pages of one version each; the second version's replica differs and is replicated again. */
export function verifyControl(pages: Array<string | undefined>, replicated: string[]): Partial<Activities> {
  return {
    versionsToVerify: async ({ after }) => {
      pages.push(after);
      return after === undefined
        ? { versions: [{ image: 'app', version: '1.0.0' }], replicas: ['west-replica'], next: 'app@1.0.0' }
        : { versions: [{ image: 'app', version: '2.0.0' }], replicas: ['west-replica'] };
    },
    ...replicaChecks(async ({ version, location }) =>
      version === '2.0.0' ? { location, status: 'stale', reason: 'committed block 1 differs' } : { location, status: 'verified' },
    ),
    replicateImage: async ({ version, location }) => {
      replicated.push(`${version} ${location}`);
      return { location, status: 'verified' };
    },
  };
}
