import { cancellationSignal, heartbeat, log } from '@temporalio/activity';
import type { Config } from '../config';
import { datastoreRoot } from '../datastore/layout';
import { checkDownloadInput } from '../deploy/download-request';
import {
  budgetText,
  hashDatastoreCopy,
  hashLibraryCopy,
  hashWithinBudget,
  listDatastoreDrift,
  listLibraryDrift,
  signedCopies,
} from '../deploy/drift-check';
import { loadTrustedKeys, type TrustedKey } from '../provenance/keys';
import type { DriftCheckInput, DriftHashed, DriftHashInput, DriftListing } from '../shared/drift-input';
import { withFailures } from '../shared/failures';
import { vcenterTask, withTarget } from './content-library';
import { keepBeating } from './keep-beating';

/**
 * An SDDC agent's part of VerifySddcs: `listDrift` (its quick queue: a stat or a file list per copy) and
 * `hashDrift` (its long queue: reads the bytes, within a budget, beating as it goes). Both only read.
 */
export function createDriftActivities(deps: {
  config: Config;
  sddc: string;
  env?: NodeJS.ProcessEnv;
  /** The signers this agent trusts; read from VMHUB_TRUSTED_KEYS when not given. */
  trusted?: readonly TrustedKey[];
}) {
  const { config, sddc } = deps;
  const root = datastoreRoot(config, sddc);
  const vcenter = vcenterTask(sddc, deps.env ?? process.env);
  const check = (input: DriftCheckInput) => () => {
    for (const c of input.copies) checkDownloadInput({ ...c, sddc: input.sddc, blob: '', sources: [] }, sddc);
  };
  // Copies are checked against what their signed statements say, verified with this agent's own keys.
  const trusted = deps.trusted ?? loadTrustedKeys(config.trustedKeys);
  const signed = (input: DriftCheckInput) => signedCopies(sddc, input.copies, trusted);

  return {
    async listDrift(input: DriftCheckInput): Promise<DriftListing> {
      const { copies, findings } = signed(input);
      const withUnchecked = (listing: DriftListing) => ({ ...listing, findings: [...findings, ...listing.findings] });
      if (input.library) {
        return withTarget(
          vcenter,
          input.library,
          async (conn, signal) => withUnchecked(await listLibraryDrift(conn, sddc, copies, signal)),
          check(input),
        );
      }
      return withFailures(async () => {
        check(input)();
        return withUnchecked(await listDatastoreDrift(root, sddc, copies));
      });
    },

    async hashDrift(input: DriftHashInput): Promise<DriftHashed> {
      let progress = { copy: '', bytesDone: 0 };
      const beat = () => heartbeat({ sddc, phase: 'hashing', ...progress });
      const run = async (hashOne: Parameters<typeof hashWithinBudget>[3]) => {
        // Those without a verified envelope were reported by the listing already.
        const { copies } = signed(input);
        const hashed = await keepBeating(() => hashWithinBudget(copies, input.budgetBytes, input.rotation, hashOne), beat);
        log.info('drift check hashed copies', {
          sddc,
          summary: budgetText(hashed, input.budgetBytes),
          found: hashed.findings.length,
        });
        return hashed;
      };
      const onBytes = (copy: string) => (bytesDone: number) => {
        progress = { copy, bytesDone };
      };
      if (input.library) {
        return withTarget(
          vcenter,
          input.library,
          (conn, signal) => run((c) => hashLibraryCopy(conn, sddc, c, { signal, onBytes: onBytes(`${c.image}@${c.version}`) })),
          check(input),
        );
      }
      const signal = cancellationSignal();
      return withFailures(async () => {
        check(input)();
        return run((c) => hashDatastoreCopy(root, sddc, c, { signal, onBytes: onBytes(`${c.image}@${c.version}`) }));
      });
    },
  };
}

export type DriftActivities = ReturnType<typeof createDriftActivities>;
