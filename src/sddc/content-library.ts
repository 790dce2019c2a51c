import type { LibraryFile } from './package-files';
import { VsphereApiError, type RestCall, type VsphereRest } from './vsphere-rest';

/**
 * A vCenter's content library through the REST API: libraries, items, update sessions (how files get
 * into an item), download sessions (how they come back out), and deploying a VM from an OVF template.
 * The decisions about which files to send live in plain functions below.
 */
const LIB = '/rest/com/vmware/content/library';
const ITEM = '/rest/com/vmware/content/library/item';
const UPDATE = '/rest/com/vmware/content/library/item/update-session';
const UPDATE_FILE = '/rest/com/vmware/content/library/item/updatesession/file';
const DOWNLOAD = '/rest/com/vmware/content/library/item/download-session';
const DOWNLOAD_FILE = '/rest/com/vmware/content/library/item/downloadsession/file';

export interface LibraryInfo {
  id: string;
  name: string;
  type: string;
  storage_backings?: Array<{ datastore_id?: string; type?: string }>;
}

export interface ItemInfo {
  id: string;
  name: string;
  type?: string;
  description?: string;
  library_id?: string;
}

export interface Checksum {
  algorithm?: string;
  checksum?: string;
}

/** A file of an item as the vCenter keeps it; `checksum_info` is there when the server reports one. */
export interface ItemFile {
  name: string;
  size?: number;
  checksum_info?: Checksum;
}

export type UpdateSessionState = 'ACTIVE' | 'DONE' | 'ERROR' | 'CANCELED';

export interface UpdateSession {
  id: string;
  library_item_id: string;
  state: UpdateSessionState;
  error_message?: { default_message?: string };
}

/** A file of an update session: READY once the server holds all its bytes (and, with a checksum, checked them). */
export interface SessionFile {
  name: string;
  status?: 'WAITING_FOR_TRANSFER' | 'TRANSFERRING' | 'READY' | 'VALIDATING' | 'ERROR';
  size?: number;
  bytes_transferred?: number;
  checksum_info?: Checksum;
  upload_endpoint?: { uri: string };
  error_message?: { default_message?: string };
}

export interface Validation {
  has_errors: boolean;
  missing_files?: string[];
  invalid_files?: Array<{ name: string; error_message?: { default_message?: string } }>;
}

export interface OvfDeployment {
  succeeded: boolean;
  resource_id?: { type: string; id: string };
  error?: { errors?: Array<{ error?: { messages?: Array<{ default_message?: string }> } }> };
}

export class ContentLibrary {
  constructor(readonly rest: VsphereRest) {}

  /** The local library of that name, if there is one. */
  async findLibrary(name: string, call?: RestCall): Promise<LibraryInfo | undefined> {
    const ids = (await this.rest.post<string[] | null>(`${LIB}?~action=find`, { spec: { name, type: 'LOCAL' } }, call)) ?? [];
    for (const id of ids) {
      const info = await this.rest.get<LibraryInfo>(`${LIB}/id:${id}`, call);
      if (info.name === name) return info;
    }
    return undefined;
  }

  createLibrary(name: string, datastoreId: string, call?: RestCall): Promise<string> {
    return this.rest.post<string>(
      '/rest/com/vmware/content/local-library',
      { create_spec: { name, type: 'LOCAL', storage_backings: [{ type: 'DATASTORE', datastore_id: datastoreId }] } },
      call,
    );
  }

  async findItem(libraryId: string, name: string, call?: RestCall): Promise<ItemInfo | undefined> {
    const ids =
      (await this.rest.post<string[] | null>(`${ITEM}?~action=find`, { spec: { library_id: libraryId, name } }, call)) ?? [];
    for (const id of ids) {
      const info = await this.getItem(id, call);
      if (info?.name === name) return info;
    }
    return undefined;
  }

  async getItem(id: string, call?: RestCall): Promise<ItemInfo | undefined> {
    try {
      return await this.rest.get<ItemInfo>(`${ITEM}/id:${id}`, call);
    } catch (err) {
      if (err instanceof VsphereApiError && err.notFound) return undefined;
      throw err;
    }
  }

  createItem(libraryId: string, name: string, type: string, description: string, call?: RestCall): Promise<string> {
    return this.rest.post<string>(ITEM, { create_spec: { library_id: libraryId, name, type, description } }, call);
  }

  /**
   * The library's item of that name, created (of `type`, with `description`) when there is none; one that
   * another task of this vCenter created first is found all the same. What it holds is the caller's to judge.
   */
  async findOrCreateItem(
    library: { id: string; name: string },
    name: string,
    created: { type: string; description: string },
    call?: RestCall,
  ): Promise<ItemInfo> {
    const found = await this.findItem(library.id, name, call);
    if (found) return found;
    try {
      await this.createItem(library.id, name, created.type, created.description, call);
    } catch (err) {
      if (!(err instanceof VsphereApiError && err.alreadyExists)) throw err;
    }
    const item = await this.findItem(library.id, name, call);
    if (!item) throw new Error(`item ${name} was created in library ${library.name} but cannot be found`);
    return item;
  }

  setDescription(itemId: string, description: string, call?: RestCall): Promise<void> {
    return this.rest.patch(`${ITEM}/id:${itemId}`, { update_spec: { description } }, call);
  }

  deleteItem(itemId: string, call?: RestCall): Promise<void> {
    return this.rest.delete(`${ITEM}/id:${itemId}`, call);
  }

  async itemFiles(itemId: string, call?: RestCall): Promise<ItemFile[]> {
    return (
      (await this.rest.get<ItemFile[] | null>(
        `/rest/com/vmware/content/library/item/file?library_item_id=${encodeURIComponent(itemId)}`,
        call,
      )) ?? []
    );
  }

  /** The update sessions of an item this user can see, in any state. */
  async updateSessionsOf(itemId: string, call?: RestCall): Promise<UpdateSession[]> {
    const ids = (await this.rest.get<string[] | null>(UPDATE, call)) ?? [];
    const sessions: UpdateSession[] = [];
    for (const id of ids) {
      const session = await this.updateSession(id, call);
      if (session?.library_item_id === itemId) sessions.push(session);
    }
    return sessions;
  }

  async updateSession(id: string, call?: RestCall): Promise<UpdateSession | undefined> {
    try {
      return await this.rest.get<UpdateSession>(`${UPDATE}/id:${id}`, call);
    } catch (err) {
      if (err instanceof VsphereApiError && err.notFound) return undefined;
      throw err;
    }
  }

  createUpdateSession(itemId: string, call?: RestCall): Promise<string> {
    return this.rest.post<string>(UPDATE, { create_spec: { library_item_id: itemId } }, call);
  }

  async sessionFiles(sessionId: string, call?: RestCall): Promise<SessionFile[]> {
    return (
      (await this.rest.get<SessionFile[] | null>(`${UPDATE_FILE}?update_session_id=${encodeURIComponent(sessionId)}`, call)) ?? []
    );
  }

  /** Adds a file the client pushes, with its SHA-256 for the server to check the bytes against. */
  addFile<T extends ExpectedFile>(sessionId: string, file: T, call?: RestCall): Promise<SessionFile> {
    return this.rest.post<SessionFile>(
      `${UPDATE_FILE}/id:${sessionId}?~action=add`,
      {
        file_spec: {
          name: file.name,
          source_type: 'PUSH',
          size: file.size,
          checksum_info: { algorithm: 'SHA256', checksum: file.sha256 },
        },
      },
      call,
    );
  }

  /** Where `file`'s bytes go in the session: the endpoint it has when `plan` sends it again, else one added for it. */
  async uploadEndpoint<T extends ExpectedFile>(
    sessionId: string,
    plan: UploadPlan<T>,
    file: T,
    call?: RestCall,
  ): Promise<string> {
    const resent = plan.resend.find((r) => r.file === file)?.endpoint;
    const endpoint = resent ?? (await this.addFile(sessionId, file, call)).upload_endpoint?.uri;
    if (!endpoint) throw new Error(`vCenter gave no upload endpoint for ${file.name}`);
    return endpoint;
  }

  validate(sessionId: string, call?: RestCall): Promise<Validation> {
    return this.rest.post<Validation>(`${UPDATE_FILE}/id:${sessionId}?~action=validate`, undefined, call);
  }

  complete(sessionId: string, call?: RestCall): Promise<void> {
    return this.rest.post<void>(`${UPDATE}/id:${sessionId}?~action=complete`, undefined, call);
  }

  cancel(sessionId: string, call?: RestCall): Promise<void> {
    return this.rest.post<void>(`${UPDATE}/id:${sessionId}?~action=cancel`, undefined, call);
  }

  /** Ends the session in ERROR with the client's reason: nothing of it is applied to the item. */
  fail(sessionId: string, reason: string, call?: RestCall): Promise<void> {
    return this.rest.post<void>(`${UPDATE}/id:${sessionId}?~action=fail`, { client_error_message: reason }, call);
  }

  /** Removes a file from the item when the session completes. */
  removeFile(sessionId: string, name: string, call?: RestCall): Promise<void> {
    return this.rest.post<void>(`${UPDATE_FILE}/id:${sessionId}?~action=remove`, { file_name: name }, call);
  }

  /** The files of an item as a download session serves them: name → the endpoint to GET its bytes from. */
  async downloadEndpoints(itemId: string, call?: RestCall): Promise<{ session: string; endpoints: Map<string, string> }> {
    const session = await this.rest.post<string>(DOWNLOAD, { create_spec: { library_item_id: itemId } }, call);
    const endpoints = new Map<string, string>();
    for (const file of (await this.rest.get<Array<{ name: string }> | null>(
      `${DOWNLOAD_FILE}?download_session_id=${encodeURIComponent(session)}`,
      call,
    )) ?? []) {
      const prepared = await this.rest.post<{ download_endpoint?: { uri: string } }>(
        `${DOWNLOAD_FILE}/id:${session}?~action=prepare`,
        { file_name: file.name },
        call,
      );
      if (prepared.download_endpoint) endpoints.set(file.name, prepared.download_endpoint.uri);
    }
    return { session, endpoints };
  }

  endDownload(session: string, call?: RestCall): Promise<void> {
    return this.rest.delete(`${DOWNLOAD}/id:${session}`, call);
  }

  /** Deploys a VM from an OVF template item into a resource pool, its networks mapped; powered off, as the template left it. */
  deployOvf(
    itemId: string,
    name: string,
    resourcePoolId: string,
    datastoreId: string | undefined,
    networkMappings: ReadonlyArray<{ key: string; value: string }>,
    call?: RestCall,
  ): Promise<OvfDeployment> {
    return this.rest.post<OvfDeployment>(
      `/rest/com/vmware/vcenter/ovf/library-item/id:${itemId}?~action=deploy`,
      {
        target: { resource_pool_id: resourcePoolId },
        deployment_spec: {
          name,
          accept_all_EULA: true,
          ...(datastoreId ? { default_datastore_id: datastoreId } : {}),
          ...(networkMappings.length > 0 ? { network_mappings: networkMappings } : {}),
        },
      },
      call,
    );
  }

  deleteVm(vmId: string, call?: RestCall): Promise<void> {
    return this.rest.delete(`/api/vcenter/vm/${encodeURIComponent(vmId)}`, call);
  }
}

/** A checksum the server reports for a file, when it is a SHA-256. */
function reportedSha256(c: Checksum | undefined): string | undefined {
  return c?.algorithm?.toUpperCase().replace('-', '') === 'SHA256' ? c.checksum?.toLowerCase() : undefined;
}

export interface UploadPlan<T extends ExpectedFile = LibraryFile> {
  /** Already held with the right SHA-256: not sent again. */
  skip: T[];
  /** Added to the session by an earlier attempt but not received: sent again to the endpoint it has. */
  resend: Array<{ file: T; endpoint: string }>;
  /** Not in the session yet: added, then sent. */
  add: T[];
}

/**
 * Which files of an item still have to be sent in a resumed update session. A file counts as received
 * only where the server says so with the SHA-256 we expect: READY in the session, or already a file of
 * the item. Where it reports no checksum (vcsim never does), the file is sent again.
 */
export function planUploads<T extends ExpectedFile>(
  files: readonly T[],
  sessionFiles: SessionFile[],
  itemFiles: ItemFile[],
): UploadPlan<T> {
  const plan: UploadPlan<T> = { skip: [], resend: [], add: [] };
  for (const file of files) {
    const inSession = sessionFiles.find((f) => f.name === file.name);
    // The last listing of a name is the file the item holds (vcsim lists every upload of a name).
    const last = itemFiles.filter((f) => f.name === file.name).pop();
    const held = last !== undefined && last.size === file.size && reportedSha256(last.checksum_info) === file.sha256;
    const ready = inSession?.status === 'READY' && reportedSha256(inSession.checksum_info) === file.sha256;
    if (ready || (held && !inSession)) plan.skip.push(file);
    else if (inSession?.upload_endpoint) plan.resend.push({ file, endpoint: inSession.upload_endpoint.uri });
    else plan.add.push(file);
  }
  return plan;
}

/** A file an item must hold: its name, size and SHA-256 (a file sent, or a member of the signed statement). */
export interface ExpectedFile {
  name: string;
  size: number;
  sha256: string;
}

/** What an item's files, as the vCenter lists them, say against the files it must hold. */
export interface ItemComparison<T extends ExpectedFile> {
  /** Expected files that are missing, of another size, or whose reported SHA-256 is another. */
  problems: string[];
  /** Files the item holds beyond the expected ones: a second descriptor among them is one the vCenter could read. */
  extra: string[];
  /** Expected files whose size matches but whose SHA-256 the vCenter does not report (vcsim never does). */
  unreported: T[];
}

/**
 * Compares an item's files with the files it must hold, by what the file list reports: name, size and,
 * where the server gives one, the SHA-256. A file sent twice can be listed twice; the last listing counts.
 */
export function compareItemFiles<T extends ExpectedFile>(expected: readonly T[], itemFiles: ItemFile[]): ItemComparison<T> {
  const out: ItemComparison<T> = { problems: [], extra: [], unreported: [] };
  for (const file of expected) {
    const held = itemFiles.filter((f) => f.name === file.name).pop();
    const sha = reportedSha256(held?.checksum_info);
    if (!held) out.problems.push(`${file.name} is missing`);
    else if (held.size !== undefined && held.size !== file.size)
      out.problems.push(`${file.name} holds ${held.size} bytes, not ${file.size}`);
    else if (sha !== undefined && sha !== file.sha256) out.problems.push(`${file.name} has SHA-256 ${sha}, not ${file.sha256}`);
    else if (sha === undefined) out.unreported.push(file);
  }
  const names = new Set(expected.map((f) => f.name));
  out.extra = [...new Set(itemFiles.map((f) => f.name).filter((n) => !names.has(n)))];
  return out;
}

/** Which update session of an item to carry on with, and which to cancel: one whose file failed is not resumed. */
export function sessionToResume(
  sessions: UpdateSession[],
  filesOf: Map<string, SessionFile[]>,
): { resume?: UpdateSession; cancel: UpdateSession[] } {
  const active = sessions.filter((s) => s.state === 'ACTIVE');
  const healthy = active.filter((s) => !(filesOf.get(s.id) ?? []).some((f) => f.status === 'ERROR'));
  const resume = healthy[0];
  return { resume, cancel: active.filter((s) => s !== resume) };
}

export function deploymentError(d: OvfDeployment): string {
  const messages = (d.error?.errors ?? []).flatMap((e) => e.error?.messages ?? []).map((m) => m.default_message);
  return messages.filter(Boolean).join('; ') || 'the vCenter gave no reason';
}
