import { pipeline } from 'node:stream';
import { VmhubError } from '../shared/errors';
import type { ImageVersion } from '../shared/image-version';
import { channelItemName, itemState, libraryItemName } from '../shared/target-kinds/content-library';
import {
  compareItemFiles,
  planUploads,
  type ContentLibrary,
  type ExpectedFile,
  type ItemFile,
  type ItemInfo,
  type LibraryInfo,
  type SessionFile,
  type UploadPlan,
} from './content-library';
import { CheckedBytes, FileMismatch, readItemFiles, verifyItem } from './item-check';
import { sessionFor, untilDone, type Progress, type VcenterConnection } from './library-import';

/**
 * A channel's library item: `<image>-<channel>`, one per image and channel in an SDDC's library, whose ID
 * never changes. Pointing it at a version replaces its files, through an update session, with those of
 * the version's own item `<image>-<version>` in the same library (a deploy imported and verified it), so
 * the bytes go from the vCenter to the agent and back, never from storage. A version the item already
 * holds moves nothing, which makes a rollback to a version still in the library cheap.
 */
export interface ChannelSyncOptions {
  /** The files of the version as its signed statement gives them: required. */
  members: readonly ExpectedFile[] | undefined;
  signal?: AbortSignal;
  onProgress?: (p: Progress) => void;
}

export interface ChannelSyncResult {
  status: 'updated' | 'current';
  item: ItemInfo;
  bytesCopied: number;
}

/** What the channel item's description says it holds; informational only, a sync always checks the files. */
export function channelDescription(ref: ImageVersion, channel: string, updating = false): string {
  return `vmhub channel ${ref.image} ${channel} ${ref.version} sha256:${ref.sha256}${updating ? ' (update in progress)' : ''}`;
}

/** An update of the channel item: the uploads still to do, and the files it holds that the version has not. */
export interface ChannelPlan<T extends ExpectedFile> extends UploadPlan<T> {
  remove: string[];
}

/** Which files a (possibly resumed) update session of the channel item sends, keeps and removes. */
export function planChannelUpdate<T extends ExpectedFile>(
  members: readonly T[],
  sessionFiles: SessionFile[],
  itemFiles: ItemFile[],
): ChannelPlan<T> {
  const names = new Set(members.map((m) => m.name));
  const remove = [...new Set(itemFiles.map((f) => f.name).filter((n) => !names.has(n)))];
  return { ...planUploads(members, sessionFiles, itemFiles), remove };
}

/**
 * Makes the channel item hold exactly the version's signed files: `current` when it already does (checked
 * by its files, never by its description), else its files are replaced in one update session and checked
 * again. A versioned item whose bytes differ from the signed ones is a ProvenanceMismatch, and the session
 * is failed so the vCenter applies none of it.
 */
export async function syncChannelItem(
  conn: VcenterConnection,
  ref: ImageVersion,
  channel: string,
  options: ChannelSyncOptions,
): Promise<ChannelSyncResult> {
  const { members, signal } = options;
  const call = { signal };
  const cl = conn.library;
  if (!members) {
    throw new VmhubError(
      'UnsignedImage',
      `${ref.image}@${ref.version} came without its signed provenance: channel ${channel} is not pointed at it`,
    );
  }
  const { library, source } = await versionItem(conn, ref, call);
  const item = await channelItem(cl, library, source, ref, channel, call);
  if ((await verifyItem(cl, item.id, members, call)).present) {
    if (item.description !== channelDescription(ref, channel))
      await cl.setDescription(item.id, channelDescription(ref, channel), call);
    return { status: 'current', item, bytesCopied: 0 };
  }
  // What the version's item lists settles a missing or resized file before a session is opened.
  const listed = compareItemFiles(members, await cl.itemFiles(source.id, call));
  if (listed.problems.length > 0) throw mismatch(source, listed.problems.join('; '));

  await cl.setDescription(item.id, channelDescription(ref, channel, true), call);
  const bytesCopied = await replaceFiles(cl, source, item, members, options);
  const verdict = await verifyItem(cl, item.id, members, call);
  if (!verdict.present)
    throw new Error(`channel item ${item.name} is not whole after its update: ${verdict.problems.join('; ')}`);
  await cl.setDescription(item.id, channelDescription(ref, channel), call);
  return { status: 'updated', item, bytesCopied };
}

/** The version's item, finished by a deploy; anything else cannot feed a channel. */
async function versionItem(
  conn: VcenterConnection,
  ref: ImageVersion,
  call: { signal?: AbortSignal },
): Promise<{ library: LibraryInfo; source: ItemInfo }> {
  const name = libraryItemName(ref.image, ref.version);
  const library = await conn.library.findLibrary(conn.target.library, call);
  const source = library && (await conn.library.findItem(library.id, name, call));
  const state = itemState(source?.description, ref.sha256, source !== undefined);
  if (!library || !source || state !== 'present') {
    throw new VmhubError(
      'VersionNotInLibrary',
      `library ${conn.target.library} on ${conn.target.vcenter} holds no finished item ${name} of ${ref.sha256} (${state === 'present' ? 'absent' : state}); deploy ${ref.image}@${ref.version} there first`,
    );
  }
  return { library, source };
}

/** The channel's item, made (empty, of the version item's type) when missing; one made by someone else is not touched. */
async function channelItem(
  cl: ContentLibrary,
  library: LibraryInfo,
  source: ItemInfo,
  ref: ImageVersion,
  channel: string,
  call: { signal?: AbortSignal },
): Promise<ItemInfo> {
  const name = channelItemName(ref.image, channel);
  const created = { type: source.type ?? 'ovf', description: channelDescription(ref, channel, true) };
  const item = await cl.findOrCreateItem(library, name, created, call);
  if (!item.description?.startsWith(`vmhub channel ${ref.image} ${channel} `)) {
    throw new VmhubError(
      'VersionConflict',
      `library ${library.name} holds an item ${name} vmhub did not make (${JSON.stringify(item.description ?? '')}); it is not overwritten`,
    );
  }
  return item;
}

function mismatch(source: ItemInfo, what: string): VmhubError {
  return new VmhubError('ProvenanceMismatch', `item ${source.name} differs from its signed statement: ${what}`);
}

/**
 * Streams each file the channel item lacks from the version's item into one update session, checked
 * against its signed SHA-256 and size on the way (and by the vCenter, which is given the same SHA-256),
 * removes the files the version has not, and completes the session. Returns the bytes copied.
 */
async function replaceFiles(
  cl: ContentLibrary,
  source: ItemInfo,
  item: ItemInfo,
  members: readonly ExpectedFile[],
  options: ChannelSyncOptions,
): Promise<number> {
  const { signal } = options;
  const call = { signal };
  const sessionId = await sessionFor(cl, item.id, signal);
  try {
    const plan = planChannelUpdate(members, await cl.sessionFiles(sessionId, call), await cl.itemFiles(item.id, call));
    const bytesTotal = members.reduce((n, f) => n + f.size, 0);
    let bytesDone = plan.skip.reduce((n, f) => n + f.size, 0);
    const skipped = bytesDone;
    const toSend = members.filter((m) => !plan.skip.includes(m));
    await readItemFiles(
      cl,
      source.id,
      toSend,
      async (file, bytes) => {
        if (!bytes) throw mismatch(source, `${file.name} cannot be downloaded from it`);
        const endpoint = await cl.uploadEndpoint(sessionId, plan, file, call);
        const before = bytesDone;
        const checked = new CheckedBytes(file, (n) => {
          bytesDone = before + n;
          options.onProgress?.({ file: file.name, bytesDone, bytesTotal });
        });
        try {
          await cl.rest.upload(endpoint, file.size, () => pipeline(bytes, checked, () => undefined), file.name, call);
        } catch (err) {
          if (err instanceof FileMismatch) throw mismatch(source, `${file.name} reads ${err.message}`);
          throw err;
        }
        bytesDone = before + file.size;
      },
      call,
    );
    await removeStale(cl, sessionId, item, plan.remove, call);
    const validation = await cl.validate(sessionId, call);
    if (validation.has_errors) throw new Error(`vCenter refused the update of item ${item.name}: ${JSON.stringify(validation)}`);
    await cl.complete(sessionId, call);
    await untilDone(cl, sessionId, signal);
    return bytesDone - skipped;
  } catch (err) {
    await endSession(cl, sessionId, err, signal);
    throw err;
  }
}

/** Removes the files the version has not, in the session; a session the vCenter ended meanwhile is an error that says so. */
async function removeStale(
  cl: ContentLibrary,
  sessionId: string,
  item: ItemInfo,
  names: string[],
  call: { signal?: AbortSignal },
): Promise<void> {
  for (const name of names) {
    try {
      await cl.removeFile(sessionId, name, call);
    } catch (err) {
      throw new Error(`could not remove ${name} from item ${item.name} in its update session: ${(err as Error).message}`);
    }
  }
  if (names.length > 0 && (await cl.updateSession(sessionId, call))?.state !== 'ACTIVE') {
    throw new Error(`the vCenter ended the update session of item ${item.name} when ${names.join(', ')} was removed from it`);
  }
}

/**
 * A cancelled task cancels its session, and bytes that are not the signed ones fail it: neither is
 * applied. After any other failure (the vCenter went away) the session stays for the next attempt.
 */
async function endSession(cl: ContentLibrary, sessionId: string, err: unknown, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) await cl.cancel(sessionId).catch(() => undefined);
  else if (err instanceof VmhubError) {
    await cl.fail(sessionId, err.message).catch(() => cl.cancel(sessionId).catch(() => undefined));
  }
}
