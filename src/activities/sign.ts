import { withFailures } from '../shared/failures';
import { requireSigningKey, signPublished, type SignInput, type SignOutput } from '../publish/sign';
import type { PublishDeps } from './publish';
import { thisRun } from './this-run';

/** The publishing side's signature: the only activity that reads the signing key to sign with it. */
export function createSigningActivities({ storage, config }: PublishDeps) {
  return {
    /** Signs the statement of the committed version and stores its envelope beside the blob; markAvailable records it. */
    async signProvenance(input: SignInput): Promise<SignOutput> {
      return withFailures(() => signPublished(storage, requireSigningKey(config.signingKeyFile), input, thisRun(), new Date()));
    },
  };
}
