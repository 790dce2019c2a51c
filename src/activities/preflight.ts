import { log } from '@temporalio/activity';
import { readSddcFacts, preflightRefusals, type DescriptorFacts } from '../sddc/preflight';
import { withVcenter, type ContentLibraryDeps, type LibraryTaskInput, type VcenterTask, vcenterTask } from './content-library';

export type { DescriptorFacts } from '../sddc/preflight';

/** A library task and the facts of the version's descriptor the workflow has from the catalog. */
export interface PreflightInput extends LibraryTaskInput {
  descriptor: DescriptorFacts;
}

/**
 * An SDDC agent's preflight, on its quick queue: before any download, whether the version can run in the
 * agent's vCenter (src/sddc/preflight.ts). Refusals are answers, not failures: the row is skipped with them.
 */
export function createPreflightActivities({ sddc, env = process.env }: Pick<ContentLibraryDeps, 'sddc' | 'env'>) {
  const vcenter: VcenterTask = vcenterTask(sddc, env);
  return {
    async preflightLibrary(input: PreflightInput): Promise<{ refusals: string[] }> {
      return withVcenter(vcenter, input, async (conn, ref, signal) => {
        const facts = await readSddcFacts(await conn.vim(signal), sddc, signal);
        const refusals = preflightRefusals(
          { ...input.descriptor, ref: `${ref.image}@${ref.version}` },
          facts,
          conn.target.networkMap,
        );
        if (refusals.length > 0) log.info('preflight refused the version', { image: ref.image, version: ref.version, refusals });
        return { refusals };
      });
    },
  };
}

export type PreflightActivities = ReturnType<typeof createPreflightActivities>;
