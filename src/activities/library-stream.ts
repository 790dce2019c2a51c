import { ApplicationFailure, activityInfo, cancellationDetails, heartbeat, log } from '@temporalio/activity';
import { removeEmptyDirs } from '../datastore/files';
import { discardPartial, openDeployment } from '../datastore/layout';
import { releaseLock } from '../datastore/locks';
import { checkDownloadInput, type DownloadInput, type DownloadOutput, type SourceFailure } from '../deploy/download-request';
import type { Envelope } from '../provenance/dsse';
import { VmhubError } from '../shared/errors';
import type { ContentLibraryTarget, LibraryPlacement } from '../shared/target-kinds/kind';
import type { Progress } from '../sddc/library-import';
import { StreamedImport } from '../sddc/library-stream';
import { importVerifiedCopy, settleVerifiedCopy } from '../sddc/library-tasks';
import { downloadLocked, lockVersionFiles, type AgentDeps } from './agent';
import { libraryContext, withVcenter } from './content-library';
import { keepBeating } from './keep-beating';

export interface StreamInput extends DownloadInput {
  target: ContentLibraryTarget;
  /** The catalog's copy of the version's signed provenance, as the import checks an item against it. */
  envelope?: Envelope;
}

export interface StreamOutput extends Omit<DownloadOutput, 'path'> {
  target: LibraryPlacement;
  /** The verified copy in the datastore, when it is kept (VMHUB_KEEP_STAGING=1). */
  path?: string;
  bytesSent: number;
}

/**
 * A content-library SDDC agent's deploy in one pass: the image is downloaded into the datastore and sent
 * into the item's update session at once (src/sddc/library-stream.ts). The datastore copy stays as before:
 * it is what a download resumes from after a crash, and the base the next version's delta deploy copies
 * unchanged blocks from.
 */
export function createLibraryStreamActivities(deps: AgentDeps & { env?: NodeJS.ProcessEnv }) {
  const { storage, config } = deps;
  const { sddc, trusted, keepStaging, root, vcenter } = libraryContext(deps);
  const downloadDeps = { storage, config, sddc, trusted, root };

  return {
    /**
     * Downloads the version from the first good source while sending it into the library item's update
     * session, and completes the session only once the whole file verified against the signed provenance;
     * any failure fails the session and removes the half item, a cancel the partial download too. A copy
     * already on disk is imported as importToLibrary does. Holds the download's lock throughout.
     */
    async streamToLibrary(input: StreamInput): Promise<StreamOutput> {
      const failures: SourceFailure[] = [];
      return withVcenter(
        vcenter,
        input,
        async (conn, ref, signal) => {
          const paths = await openDeployment(root, input);
          const { holder } = await lockVersionFiles(paths, 'DownloadInProgress');
          let progress: Progress = { bytesDone: 0, bytesTotal: input.sizeBytes };
          const onProgress = (p: Progress) => (progress = p);
          const beat = () => heartbeat({ sddc, phase: 'importing', ...progress });
          let importer: StreamedImport | undefined;
          let removed = false;
          try {
            importer = await StreamedImport.open(conn, ref, signal, onProgress);
            const downloaded = await downloadLocked(downloadDeps, input, paths, failures, importer?.follow);
            const fetched = downloaded.status === 'deployed';
            const sent = importer?.started === true ? await keepBeating(() => importer!.finish(fetched), beat) : undefined;
            // An attempt that streamed bytes, then a copy found on disk: the session was failed, the verified copy goes instead.
            if (importer?.started === true && !sent)
              log.warn('the download ended without verifying the bytes streamed; importing the verified copy');
            const streamed = sent !== undefined;
            const result =
              sent ??
              (await keepBeating(() => importVerifiedCopy(conn, ref, paths, { signal, onProgress, trusted }), beat)).result;
            log.info('deployed into the content library', {
              item: result.placement.itemName,
              streamed,
              bytesFetched: downloaded.bytesFetched,
              bytesReusedLocally: downloaded.bytesReusedLocally,
              bytesSent: result.bytesSent,
              attempt: activityInfo().attempt,
            });
            const copy = await settleVerifiedCopy(root, paths, ref, { keepStaging, holder });
            removed = copy.removed;
            const status = downloaded.status === 'deployed' || result.status === 'deployed' ? 'deployed' : 'already-present';
            const out: StreamOutput = {
              status,
              source: downloaded.source,
              bytes: downloaded.bytes,
              bytesFetched: downloaded.bytesFetched,
              bytesResumed: downloaded.bytesResumed,
              bytesReusedLocally: downloaded.bytesReusedLocally,
              sourceFailures: downloaded.sourceFailures,
              target: result.placement,
              bytesSent: result.bytesSent,
            };
            if (copy.path !== undefined) out.path = copy.path;
            return out;
          } catch (err) {
            const cancelled = signal.aborted && cancellationDetails()?.cancelRequested === true;
            const reason = cancelled ? 'the deploy was cancelled' : (err as Error).message;
            await importer
              ?.abandon(reason, cancelled)
              .catch((e: unknown) => log.warn('could not give the streamed import up', { error: e }));
            if (cancelled) await discardPartial(paths);
            if (err instanceof VmhubError) throw ApplicationFailure.nonRetryable(err.message, err.type, failures);
            throw err;
          } finally {
            await releaseLock(paths.lock, holder);
            if (removed) await removeEmptyDirs(paths.dir);
          }
        },
        () => checkDownloadInput(input, sddc),
      );
    },
  };
}

export type LibraryStreamActivities = ReturnType<typeof createLibraryStreamActivities>;
