import { activityInfo, cancellationSignal, heartbeat, log } from '@temporalio/activity';
import type { Catalog } from '../catalog/catalog';
import type { RunRef } from '../catalog/image-records';
import type { Config } from '../config';
import { withFailures } from '../shared/failures';
import { inSpan, noteFacts } from '../observability/spans';
import type { ImageFormat } from '../shared/image-format';
import {
  abandonClaim,
  type AvailableInput,
  claimVersion,
  lostClaim,
  markAvailable,
  ownsClaim,
  type AbandonOutput,
  type ClaimInput,
  type ClaimOutput,
} from '../publish/claim';
import { commitStaged, type CommitOutput } from '../publish/commit';
import { inspectImage, type Inspection, type SourceDigest } from '../publish/inspect-image';
import type { BlobLocation, PublishResult } from '../shared/publish-input';
import { probeImage, type ProbeResult } from '../publish/probe';
import { stageRange, type StageCheckpoint, type StageOutput } from '../publish/stage-range';
import { requireSigningKey, type SignInput, type SignOutput } from '../publish/sign';
import { PublishWorkspace } from '../publish/workspace';
import { openImageSource } from '../source/image-source';
import type { ImageSource } from '../source/source';
import type { BlockPlan, BlockRange } from '../shared/block-plan';
import type { BlockStores } from '../storage/block-store';
import type { TemporalView } from '../temporal/connection';
import { heartbeatLiveness, keepBeating } from './keep-beating';
import { ownerOf, thisRun } from './this-run';
import { transferSignal } from './transfer-signal';

export type {
  AbandonOutput,
  ClaimInput,
  ClaimOutput,
  CommitOutput,
  Inspection,
  ProbeResult,
  SignInput,
  SignOutput,
  SourceDigest,
  StageOutput,
};

export interface PublishDeps {
  storage: BlockStores;
  catalog: Catalog;
  config: Config;
  temporal: TemporalView;
}

export interface StageInput {
  source: string;
  pin?: string;
  location: BlobLocation;
  plan: BlockPlan;
  range: BlockRange;
}

export interface CommitInput {
  source: string;
  pin?: string;
  location: BlobLocation;
  plan: BlockPlan;
  format: ImageFormat;
  digest: SourceDigest;
  image: string;
  version: string;
  /** The claim's owner (runOwner()); runs started before it was passed own by their own run. */
  owner?: RunRef;
}

/** Opens a publish's source for the time fn runs; with `pin` (the version the probe saw), other content is SourceChanged. */
function sourceOpener({ storage, config }: Pick<PublishDeps, 'storage' | 'config'>) {
  const policy = { hosts: config.sourceHosts, credentials: storage.topology.sources };
  return async <T>(
    source: string,
    fn: (s: ImageSource, format: ImageFormat) => Promise<T>,
    options: { declared?: ImageFormat; pin?: string } = {},
  ): Promise<T> => {
    const { image, format } = await openImageSource(source, config.repositoryRoots, {
      ...options,
      policy,
      signal: cancellationSignal(),
    });
    try {
      return await fn(image, format);
    } finally {
      await image.close();
    }
  };
}

/**
 * The publish's activities: each opens what it needs, binds the activity's cancellation, heartbeat and
 * log, and hands the work to its engine in src/publish/.
 */
export function createPublishActivities({ storage, catalog, config, temporal }: PublishDeps) {
  const withSource = sourceOpener({ storage, config });
  const work = new PublishWorkspace(config);
  const tapKey = (input: { source: string; pin?: string }) => ({ run: thisRun(), source: input.source, pin: input.pin });

  return {
    /** Checks the source, tells its format from its bytes and plans its blocks. */
    async probeSource(input: { source: string; format?: ImageFormat }): Promise<ProbeResult> {
      return withFailures(() =>
        withSource(input.source, (s, format) => probeImage(s, format, config, cancellationSignal()), {
          declared: input.format,
        }),
      );
    },

    /** Claims image@version (a worker that could not sign it is refused first), or reports the available one. */
    async claimVersion(input: ClaimInput & { owner?: RunRef }): Promise<ClaimOutput> {
      const claim = () => claimVersion({ storage, catalog, temporal }, input, ownerOf(input), log);
      return withFailures(async () => requireSigningKey(config.signingKeyFile) && claim());
    },

    /** One pass over the source: its SHA-256, block list digest and metadata. */
    async inspectSource(input: { source: string; plan: BlockPlan; pin?: string; image?: string }): Promise<Inspection> {
      return withFailures(() =>
        withSource(
          input.source,
          (source, format) =>
            inspectImage(
              work,
              { ...input, source, format, tapKey: tapKey(input), signal: transferSignal(config.transferConcurrency) },
              heartbeatLiveness,
              log,
            ),
          { pin: input.pin },
        ),
      );
    },

    /** Stages a contiguous range of blocks; a retried attempt resumes after its last checkpoint. */
    async stageBlockRange(input: StageInput): Promise<StageOutput> {
      return withFailures(() =>
        withSource(
          input.source,
          (source) =>
            inSpan('vmhub.stage', { location: input.location.storage }, async (span) => {
              const staged = await stageRange(
                work,
                {
                  source,
                  tapKey: tapKey(input),
                  store: storage.store(input.location.storage),
                  location: input.location.storage,
                  blob: input.location.blob,
                  plan: input.plan,
                  range: input.range,
                  resumed: activityInfo().heartbeatDetails as StageCheckpoint | undefined,
                  signal: transferSignal(config.transferConcurrency),
                },
                heartbeatLiveness,
                log,
              );
              noteFacts(span, { bytes: staged.bytesUploaded });
              return staged;
            }),
          { pin: input.pin },
        ),
      );
    },

    /** Commits the staged blocks in order, once this run is found to still own the version. */
    async commitBlocks(input: CommitInput): Promise<CommitOutput> {
      // A commit of 50,000 blocks, or re-reading ambiguous ones, takes a while: beat so a dead worker shows.
      return keepBeating(() =>
        withFailures(async () => {
          heartbeat();
          const me = ownerOf(input);
          if (!(await ownsClaim(catalog, input.image, input.version, me))) throw lostClaim(input.image, input.version);
          return commitStaged(
            {
              store: storage.store(input.location.storage),
              location: input.location.storage,
              blob: input.location.blob,
              plan: input.plan,
              format: input.format,
              digest: input.digest,
              image: input.image,
              version: input.version,
              runId: me.runId,
              signal: transferSignal(config.transferConcurrency),
              withSource: (fn) => withSource(input.source, fn, { pin: input.pin }),
            },
            log,
          );
        }),
      );
    },

    /** uploading → available, for the run that owns the claim. */
    async markAvailable(input: AvailableInput & { owner?: RunRef }): Promise<PublishResult> {
      return withFailures(() => markAvailable(catalog, input, ownerOf(input)));
    },

    /** After a failed or cancelled publish: removes what this run wrote, if it still owns the claim. */
    async abandonPublish(input: {
      image: string;
      version: string;
      location: BlobLocation;
      status: 'failed' | 'cancelled';
      error: string;
      owner?: RunRef;
    }): Promise<AbandonOutput> {
      return withFailures(async () => {
        // A reset run shares its predecessor's owner: the predecessor's late cleanup must not undo the new run's work.
        if (input.owner && (await temporal.isSuperseded(thisRun()))) return { owned: false, removed: [] };
        return abandonClaim({ storage, catalog }, input, ownerOf(input));
      });
    },
  };
}

export type PublishActivities = ReturnType<typeof createPublishActivities>;
