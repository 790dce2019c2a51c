import fs from 'node:fs';
import { Readable } from 'node:stream';
import { VmhubError } from '../shared/errors';
import { formatOf } from '../shared/image-format';
import type { ImageVersion } from '../shared/image-version';
import {
  ContentLibrary,
  deploymentError,
  planUploads,
  sessionToResume,
  type ExpectedFile,
  type ItemInfo,
  type LibraryInfo,
  type SessionFile,
} from './content-library';
import { checkImportedItem } from './item-check';
import { ovaMembers, wholeImageFile, wholeImageName, type LibraryFile } from './package-files';
import {
  itemDescription,
  itemState,
  libraryItemName,
  recordedSha256,
  type ItemState,
} from '../shared/target-kinds/content-library';
import type { AgentVcenter } from './agent-vcenter';
import type { ContentLibraryTarget, LibraryPlacement } from '../shared/target-kinds/kind';
import { VimSession } from './vim-soap';
import { VsphereApiError, VsphereRest } from './vsphere-rest';

export interface Progress {
  file?: string;
  bytesDone: number;
  bytesTotal: number;
}

/**
 * A REST session with the agent's vCenter, and a SOAP one made only when inventory IDs are needed. Both
 * go to the agent's own URL with its own trust and login; the target gives the library and placement.
 */
export class VcenterConnection {
  private vimSession?: Promise<VimSession>;

  private constructor(
    readonly target: ContentLibraryTarget,
    private readonly vcenter: AgentVcenter,
    readonly library: ContentLibrary,
  ) {}

  static async open(target: ContentLibraryTarget, vcenter: AgentVcenter, signal?: AbortSignal): Promise<VcenterConnection> {
    const rest = await VsphereRest.login(vcenter.url, vcenter.credentials, { trust: vcenter.tls, signal });
    return new VcenterConnection(target, vcenter, new ContentLibrary(rest));
  }

  vim(signal?: AbortSignal): Promise<VimSession> {
    this.vimSession ??= VimSession.login(this.vcenter.url, this.vcenter.credentials, { trust: this.vcenter.tls, signal });
    return this.vimSession;
  }

  async close(): Promise<void> {
    const vim = await this.vimSession?.catch(() => undefined);
    await Promise.all([vim?.logout(), this.library.rest.logout()]);
  }
}

export function placementOf(target: ContentLibraryTarget, item: ItemInfo): LibraryPlacement {
  return { kind: 'content-library', vcenter: target.vcenter, library: target.library, itemId: item.id, itemName: item.name };
}

export interface FoundItem {
  state: Exclude<ItemState, 'conflict'>;
  library?: LibraryInfo;
  item?: ItemInfo;
}

/** What the target's library holds under the image's item name; other bytes there are a VersionConflict. */
export async function lookupItem(conn: VcenterConnection, ref: ImageVersion, signal?: AbortSignal): Promise<FoundItem> {
  const library = await conn.library.findLibrary(conn.target.library, { signal });
  if (!library) return { state: 'absent' };
  const item = await conn.library.findItem(library.id, libraryItemName(ref.image, ref.version), { signal });
  const state = itemState(item?.description, ref.sha256, item !== undefined);
  if (state === 'conflict') throw conflict(conn.target, ref, item!);
  return { state, library, item };
}

function conflict(target: ContentLibraryTarget, ref: ImageVersion, item: ItemInfo): VmhubError {
  const sha = recordedSha256(item.description);
  return new VmhubError(
    'VersionConflict',
    `library ${target.library} on ${target.vcenter} already holds ${item.name} ${sha ? `with SHA-256 ${sha}` : 'not made by vmhub'}; ` +
      `${ref.image}@${ref.version} is ${ref.sha256}, and the item is not overwritten`,
  );
}

/** The datastore a new library goes on: the target's by name, else the first the vCenter lists. */
async function datastoreId(conn: VcenterConnection, signal?: AbortSignal): Promise<string> {
  const vim = await conn.vim(signal);
  const stores = (await vim.objectsOfType('Datastore', ['name'], signal)).sort((a, b) =>
    a.props.name.localeCompare(b.props.name),
  );
  const wanted = conn.target.datastore;
  const store = wanted ? stores.find((s) => s.props.name === wanted) : stores[0];
  if (!store) {
    throw new VmhubError(
      'InvalidInput',
      `vCenter ${conn.target.vcenter} has ${wanted ? `no datastore named ${wanted}` : 'no datastore'}; datastores: ${stores.map((s) => s.props.name).join(', ') || 'none'}`,
    );
  }
  return store.obj.id;
}

async function libraryFor(conn: VcenterConnection, signal?: AbortSignal): Promise<LibraryInfo> {
  const found = await conn.library.findLibrary(conn.target.library, { signal });
  if (found) return found;
  try {
    await conn.library.createLibrary(conn.target.library, await datastoreId(conn, signal), { signal });
  } catch (err) {
    // Another agent of this vCenter made it first.
    if (!(err instanceof VsphereApiError && err.alreadyExists)) throw err;
  }
  const made = await conn.library.findLibrary(conn.target.library, { signal });
  if (!made) throw new Error(`library ${conn.target.library} on ${conn.target.vcenter} was created but cannot be found`);
  return made;
}

export interface ImportOptions {
  /** The verified image on the agent's disk. */
  file: string;
  signal?: AbortSignal;
  onProgress?: (p: Progress) => void;
}

export interface ImportResult {
  status: 'deployed' | 'already-present';
  placement: LibraryPlacement;
  bytesSent: number;
  /** Bytes of files the vCenter already held with the right SHA-256, from an earlier attempt. */
  bytesSkipped: number;
}

/** The files of the item an image becomes: an OVA's members (an OVF template), or the image itself (an ISO). */
export async function itemFilesOf(ref: ImageVersion, options: ImportOptions): Promise<LibraryFile[]> {
  const format = formatOf(ref.format);
  if (!format.libraryItem.members) {
    return [wholeImageFile(wholeImageName(ref), ref.sizeBytes, ref.sha256)];
  }
  return ovaMembers(options.file, {
    signal: options.signal,
    onBytes: (bytesRead) => options.onProgress?.({ file: 'reading the OVA', bytesDone: bytesRead, bytesTotal: ref.sizeBytes }),
  });
}

/**
 * Imports the image as item `<image>-<version>`: finds or creates the library and the item (marked as
 * importing), carries on with the item's open update session or opens one, sends every file the
 * vCenter does not hold yet with its SHA-256, completes the session, checks the item's files and only
 * then records the image, version and SHA-256 in the item's description. An item holding other bytes
 * is a VersionConflict and is never touched.
 */
export async function importImage(conn: VcenterConnection, ref: ImageVersion, options: ImportOptions): Promise<ImportResult> {
  const { signal } = options;
  const call = { signal };
  const cl = conn.library;
  const { item, placement, state } = await openItem(conn, ref, signal);
  if (state === 'present') return { status: 'already-present', placement, bytesSent: 0, bytesSkipped: 0 };

  const files = await itemFilesOf(ref, options);
  const sessionId = await sessionFor(cl, item.id, signal);
  const plan = planUploads(files, await cl.sessionFiles(sessionId, call), await cl.itemFiles(item.id, call));
  const bytesTotal = files.reduce((n, f) => n + f.size, 0);
  let bytesDone = plan.skip.reduce((n, f) => n + f.size, 0);
  const bytesSkipped = bytesDone;
  const report = (file: string) => options.onProgress?.({ file, bytesDone, bytesTotal });
  const send = async (file: LibraryFile, endpoint: string) => {
    const body = () => {
      const stream =
        file.size === 0
          ? Readable.from([])
          : fs.createReadStream(options.file, { start: file.offset, end: file.offset + file.size - 1 });
      stream.on('data', (chunk: Buffer) => {
        bytesDone += chunk.length;
        report(file.name);
      });
      return stream;
    };
    await cl.rest.upload(endpoint, file.size, body, file.name, call);
  };
  // In archive order: the descriptor first, as the OVF specification has it.
  for (const file of files) {
    if (plan.skip.includes(file)) continue;
    await send(file, await cl.uploadEndpoint(sessionId, plan, file, call));
  }
  await completeImport(conn, ref, { id: item.id, name: item.name }, sessionId, files, signal);
  return { status: 'deployed', placement, bytesSent: bytesDone - bytesSkipped, bytesSkipped };
}

export interface OpenedItem {
  item: ItemInfo;
  placement: LibraryPlacement;
  state: 'importing' | 'present';
}

/**
 * Finds or creates the library and the version's item (marked as importing); an item holding other bytes
 * is a VersionConflict and is never touched.
 */
export async function openItem(conn: VcenterConnection, ref: ImageVersion, signal?: AbortSignal): Promise<OpenedItem> {
  const call = { signal };
  const cl = conn.library;
  const name = libraryItemName(ref.image, ref.version);
  const library = await libraryFor(conn, signal);
  const item = await cl.findOrCreateItem(
    { id: library.id, name: conn.target.library },
    name,
    { type: formatOf(ref.format).libraryItem.type, description: itemDescription(ref.image, ref.version, ref.sha256, true) },
    call,
  );
  const state = itemState(item.description, ref.sha256, true);
  if (state === 'conflict') throw conflict(conn.target, ref, item);
  return { item, placement: placementOf(conn.target, item), state: state === 'present' ? 'present' : 'importing' };
}

/**
 * Ends an update session whose files were all sent: validated (a refusal cancels it), completed, awaited,
 * the item's files checked against those sent, and only then the item recorded as this version's.
 */
export async function completeImport(
  conn: VcenterConnection,
  ref: ImageVersion,
  item: { id: string; name: string },
  sessionId: string,
  files: readonly ExpectedFile[],
  signal?: AbortSignal,
): Promise<void> {
  const call = { signal };
  const cl = conn.library;
  const validation = await cl.validate(sessionId, call);
  if (validation.has_errors) {
    await cl.cancel(sessionId).catch(() => undefined);
    const invalid = (validation.invalid_files ?? []).map((f) => `${f.name}: ${f.error_message?.default_message ?? 'invalid'}`);
    const missing = (validation.missing_files ?? []).map((f) => `${f} is missing`);
    throw new VmhubError(
      'InvalidImage',
      `vCenter ${conn.target.vcenter} refused item ${item.name}: ${[...invalid, ...missing].join('; ')}`,
    );
  }
  await cl.complete(sessionId, call);
  await untilDone(cl, sessionId, signal);
  await checkImportedItem(cl, item, files, call);
  await cl.setDescription(item.id, itemDescription(ref.image, ref.version, ref.sha256, false), call);
}

/** The item's open update session to carry on with, or a new one; a session whose file failed is cancelled. */
export async function sessionFor(cl: ContentLibrary, itemId: string, signal?: AbortSignal): Promise<string> {
  const sessions = await cl.updateSessionsOf(itemId, { signal });
  const filesOf = new Map<string, SessionFile[]>();
  for (const s of sessions.filter((x) => x.state === 'ACTIVE')) filesOf.set(s.id, await cl.sessionFiles(s.id, { signal }));
  const { resume, cancel } = sessionToResume(sessions, filesOf);
  for (const s of cancel) await cl.cancel(s.id, { signal });
  return resume?.id ?? cl.createUpdateSession(itemId, { signal });
}

const POLL_MS = 500;

/** Completing a session is asynchronous: the server checks the files, then moves it to DONE or ERROR. */
export async function untilDone(cl: ContentLibrary, sessionId: string, signal?: AbortSignal): Promise<void> {
  for (;;) {
    const session = await cl.updateSession(sessionId, { signal });
    if (!session) throw new Error('the update session disappeared while it completed');
    if (session.state === 'DONE') return;
    if (session.state === 'ERROR' || session.state === 'CANCELED') {
      // Bytes that fail the server's SHA-256 check were damaged on the way: the next attempt sends them again.
      if (session.state === 'ERROR') await cl.cancel(sessionId).catch(() => undefined);
      throw new Error(
        `the update session ended ${session.state}: ${session.error_message?.default_message ?? 'no reason given'}`,
      );
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
    signal?.throwIfAborted();
  }
}

/**
 * Gives up an import that was cancelled: cancels the item's open update sessions, and removes the
 * item if it never became whole, so no half item is left behind.
 */
/**
 * Removes the version's item, finished or half imported, for a retire: open update sessions are cancelled
 * first. An item of that name holding other bytes is not this version's and fails with VersionConflict.
 */
export async function removeItem(
  conn: VcenterConnection,
  ref: ImageVersion,
  signal?: AbortSignal,
): Promise<ItemInfo | undefined> {
  const found = await lookupItem(conn, ref, signal);
  if (!found.item) return undefined;
  for (const s of await conn.library.updateSessionsOf(found.item.id, { signal }))
    if (s.state === 'ACTIVE') await conn.library.cancel(s.id, { signal });
  await conn.library.deleteItem(found.item.id, { signal });
  return found.item;
}

export async function discardImport(conn: VcenterConnection, ref: ImageVersion): Promise<void> {
  const found = await conn.library.findLibrary(conn.target.library);
  const item = found && (await conn.library.findItem(found.id, libraryItemName(ref.image, ref.version)));
  if (!item || itemState(item.description, ref.sha256, true) !== 'importing') return;
  for (const s of await conn.library.updateSessionsOf(item.id)) if (s.state === 'ACTIVE') await conn.library.cancel(s.id);
  await conn.library.deleteItem(item.id);
}

/** The vCenter refused to make a VM from the item: trying again gets the same answer. */
export class InstantiateFailed extends Error {
  override name = 'InstantiateFailed';
}

export interface InstantiateResult {
  vm: string;
  cpus: number;
  memoryMiB: number;
}

/**
 * Deploys a VM named `vmName` from the OVF template into the target's resource pool (default: the root
 * pool of the first cluster), reads its CPUs and memory, and deletes it, whatever happened. On a retry,
 * a VM of that name left by the earlier attempt is deleted first.
 */
export async function instantiate(
  conn: VcenterConnection,
  placement: LibraryPlacement,
  vmName: string,
  options: { retry?: boolean; signal?: AbortSignal } = {},
): Promise<InstantiateResult> {
  const deployed = await deployFromItem(conn, placement, vmName, options);
  await removeVm(conn, deployed.vm);
  return deployed;
}

/**
 * Deploys a VM named `vmName` from the OVF template and reads its CPUs and memory; the VM stays, powered
 * off, for the caller to use and remove (it is removed here only when its hardware cannot be read). A
 * vCenter refusing the deploy is InstantiateFailed. On a retry, a VM of that name left by the earlier
 * attempt is removed first.
 */
export async function deployFromItem(
  conn: VcenterConnection,
  placement: LibraryPlacement,
  vmName: string,
  options: { retry?: boolean; signal?: AbortSignal } = {},
): Promise<InstantiateResult> {
  const { signal } = options;
  const vim = await conn.vim(signal);
  // Listing every VM is costly on a large vCenter: only a retry can find one left behind.
  if (options.retry) await removeVmsNamed(conn, vmName, signal);
  const pool = await resourcePool(conn, vim, signal);
  const library = await conn.library.findLibrary(conn.target.library, { signal });
  const datastore = library?.storage_backings?.find((b) => b.datastore_id)?.datastore_id;
  const networks = await networkMappings(conn, vim, signal);
  const deployed = await conn.library.deployOvf(placement.itemId, vmName, pool, datastore, networks, {
    signal,
    idleTimeoutMs: 30 * 60_000,
  });
  if (!deployed.succeeded || !deployed.resource_id) {
    throw new InstantiateFailed(
      `vCenter ${conn.target.vcenter} could not deploy a VM from ${placement.itemName}: ${deploymentError(deployed)}`,
    );
  }
  const vm = deployed.resource_id.id;
  try {
    const hw = await vim.properties(
      { type: 'VirtualMachine', id: vm },
      ['config.hardware.numCPU', 'config.hardware.memoryMB'],
      signal,
    );
    return { vm, cpus: Number(hw['config.hardware.numCPU']), memoryMiB: Number(hw['config.hardware.memoryMB']) };
  } catch (err) {
    await removeVm(conn, vm).catch(() => undefined);
    throw err;
  }
}

/**
 * The SDDC's `--network-map` as a deploy spec gives it: each descriptor network with the ID of the vCenter
 * network it stands for, so a VM made from the item is attached where the preflight said it would be.
 */
async function networkMappings(conn: VcenterConnection, vim: VimSession, signal?: AbortSignal): Promise<NetworkMapping[]> {
  const map = conn.target.networkMap ?? {};
  if (Object.keys(map).length === 0) return [];
  const networks = (await vim.objectsOfType('Network', ['name'], signal)).map((n) => ({ id: n.obj.id, name: n.props.name }));
  return mappedNetworks(map, networks, conn.target.vcenter);
}

export interface NetworkMapping {
  key: string;
  value: string;
}

/** Each mapped descriptor network with the ID of the vCenter network of the name it maps to; a name the vCenter lacks is refused. */
export function mappedNetworks(
  map: Record<string, string>,
  networks: ReadonlyArray<{ id: string; name: string }>,
  vcenter: string,
): NetworkMapping[] {
  return Object.entries(map).map(([from, to]) => {
    const network = networks.find((n) => n.name === to);
    if (!network)
      throw new VmhubError('InvalidInput', `vCenter ${vcenter} has no network named ${to}, which ${from} is mapped to`);
    return { key: from, value: network.id };
  });
}

/** Removes every VM named `vmName`: what an earlier attempt (or a cancelled one) left behind. */
export async function removeVmsNamed(conn: VcenterConnection, vmName: string, signal?: AbortSignal): Promise<number> {
  const vim = await conn.vim(signal);
  let removed = 0;
  for (const left of await vim.objectsOfType('VirtualMachine', ['name'], signal)) {
    if (left.props.name === vmName && (await removeVm(conn, left.obj.id, signal))) removed += 1;
  }
  return removed;
}

/**
 * Powers the VM off when it is not off, then deletes it (a vCenter refuses to delete a running VM). A VM
 * already gone is no error: the answer is then false.
 */
export async function removeVm(conn: VcenterConnection, vm: string, signal?: AbortSignal): Promise<boolean> {
  const vim = await conn.vim(signal);
  const ref = { type: 'VirtualMachine', id: vm };
  try {
    const power = (await vim.properties(ref, ['runtime.powerState'], signal))['runtime.powerState'];
    if (power === undefined) return false;
    if (power !== 'poweredOff') await vim.runTask('PowerOffVM_Task', ref, signal);
    await conn.library.deleteVm(vm, { signal });
    return true;
  } catch (err) {
    if (err instanceof VsphereApiError && (err.notFound || err.type === 'ManagedObjectNotFound')) return false;
    throw err;
  }
}

async function resourcePool(conn: VcenterConnection, vim: VimSession, signal?: AbortSignal): Promise<string> {
  const wanted = conn.target.resourcePool;
  if (wanted) {
    const pools = await vim.objectsOfType('ResourcePool', ['name'], signal);
    const pool = pools.find((p) => p.props.name === wanted);
    if (!pool) throw new VmhubError('InvalidInput', `vCenter ${conn.target.vcenter} has no resource pool named ${wanted}`);
    return pool.obj.id;
  }
  const clusters = (await vim.objectsOfType('ClusterComputeResource', ['name', 'resourcePool'], signal)).sort((a, b) =>
    a.props.name.localeCompare(b.props.name),
  );
  const root = clusters[0]?.props.resourcePool;
  if (!root)
    throw new VmhubError(
      'InvalidInput',
      `vCenter ${conn.target.vcenter} has no cluster to deploy a VM into; name a resource pool for the SDDC with \`vmhub sddc update <sddc> --resource-pool <name>\``,
    );
  return root.replace(/^ResourcePool:/, '');
}
