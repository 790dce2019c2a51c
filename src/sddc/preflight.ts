import type { ImageMetadata } from '../images/inspect';
import { plural } from '../shared/units';
import type { VimSession } from './vim-soap';

/**
 * Preflight of a version against one SDDC's vCenter, before any byte moves: the descriptor's networks
 * exist there (or are mapped to networks that do), its virtual hardware version is one the hosts can
 * create, and its CPUs and memory fit the largest host. Each refusal says what to do about it.
 */

/** What a preflight needs of a version's OVF descriptor, as the catalog keeps it. */
export interface DescriptorFacts {
  /** The networks its NetworkSection and its NICs name. */
  networks: string[];
  /** Its VirtualSystemType values of vSphere (`vmx-15`); empty when it names none, and then not checked. */
  hardwareVersions: string[];
  cpus: number;
  memoryMiB: number;
}

/** A version's descriptor facts and how messages name it (`photon@5.0.1`). */
export interface VersionFacts extends DescriptorFacts {
  ref: string;
}

/** What a vCenter offers; a fact it could not tell is absent, and not checked. */
export interface SddcFacts {
  sddc: string;
  networks: string[];
  /** Hardware versions VMs can be created with on some compute resource. */
  hardwareVersions?: string[];
  /** The largest host's CPU threads and memory. */
  largestHost?: { cpuThreads: number; memoryMiB: number };
}

/** Networks a message lists before it says how many more there are. */
const NETWORKS_LISTED = 10;

/** The descriptor facts of an OVA's metadata; undefined for other formats. */
export function descriptorFacts(metadata: ImageMetadata | undefined): DescriptorFacts | undefined {
  if (!metadata || metadata.kind !== 'ova') return undefined;
  const networks = [...metadata.networks.map((n) => n.name), ...metadata.nics.map((n) => n.network ?? '')];
  return {
    networks: [...new Set(networks.filter((n) => n !== ''))],
    hardwareVersions: metadata.hardwareFamily.filter((f) => /^vmx-\d+$/.test(f)),
    cpus: metadata.cpus,
    memoryMiB: metadata.memoryMiB,
  };
}

const vmxNumber = (v: string) => Number(/^vmx-(\d+)$/.exec(v)?.[1] ?? NaN);

function listed(names: string[]): string {
  if (names.length === 0) return 'none';
  const more = names.length > NETWORKS_LISTED ? `, and ${names.length - NETWORKS_LISTED} more` : '';
  return names.slice(0, NETWORKS_LISTED).join(', ') + more;
}

function networkRefusals(version: VersionFacts, sddc: SddcFacts, networkMap: Record<string, string>): string[] {
  const present = new Set(sddc.networks);
  const offered = `(networks: ${listed(sddc.networks)})`;
  const refusals: string[] = [];
  for (const network of version.networks) {
    const mapped = networkMap[network];
    if (present.has(mapped ?? network)) continue;
    refusals.push(
      mapped === undefined
        ? `network "${network}" of ${version.ref} does not exist in ${sddc.sddc} ${offered}; map it with vmhub sddc update ${sddc.sddc} --network-map ${network}=<network>`
        : `network "${network}" of ${version.ref} is mapped to "${mapped}", which does not exist in ${sddc.sddc} ${offered}; change the mapping with vmhub sddc update ${sddc.sddc} --network-map ${network}=<network>`,
    );
  }
  return refusals;
}

function hardwareRefusal(version: VersionFacts, sddc: SddcFacts): string | undefined {
  const supported = sddc.hardwareVersions;
  if (!supported || supported.length === 0 || version.hardwareVersions.length === 0) return undefined;
  if (version.hardwareVersions.some((v) => supported.includes(v))) return undefined;
  const newest = supported.reduce((a, b) => (vmxNumber(b) > vmxNumber(a) ? b : a));
  return `${version.ref} needs virtual hardware ${version.hardwareVersions.join(' or ')}, which the hosts of ${sddc.sddc} cannot create (newest: ${newest}); deploy a version built for ${newest} or older, or upgrade the hosts`;
}

function resourceRefusals(version: VersionFacts, sddc: SddcFacts): string[] {
  const host = sddc.largestHost;
  if (!host) return [];
  const refusals: string[] = [];
  if (version.cpus > host.cpuThreads) {
    refusals.push(
      `${version.ref} needs ${plural(version.cpus, 'CPU')} and the largest host of ${sddc.sddc} has ${plural(host.cpuThreads, 'CPU thread')}; deploy a smaller version or add a larger host`,
    );
  }
  if (version.memoryMiB > host.memoryMiB) {
    refusals.push(
      `${version.ref} needs ${version.memoryMiB} MiB of memory and the largest host of ${sddc.sddc} has ${host.memoryMiB} MiB; deploy a smaller version or add a larger host`,
    );
  }
  return refusals;
}

/** Why the version cannot run in the SDDC, one reason each; none when it can or when the facts do not tell. */
export function preflightRefusals(version: VersionFacts, sddc: SddcFacts, networkMap: Record<string, string> = {}): string[] {
  const hardware = hardwareRefusal(version, sddc);
  return [...networkRefusals(version, sddc, networkMap), ...(hardware ? [hardware] : []), ...resourceRefusals(version, sddc)];
}

const MiB = 2 ** 20;

/**
 * What the vCenter offers: its networks (uplink port groups carry no VM), the hardware versions of its
 * compute resources, and its largest host. A vCenter whose environment browser does not answer leaves the
 * hardware version unchecked rather than refusing.
 */
export async function readSddcFacts(vim: VimSession, sddc: string, signal?: AbortSignal): Promise<SddcFacts> {
  const networks = await vim.objectsOfType('Network', ['name'], signal);
  const portGroups = await vim.objectsOfType('DistributedVirtualPortgroup', ['config.uplink'], signal);
  const uplinks = new Set(portGroups.filter((p) => p.props['config.uplink'] === 'true').map((p) => p.obj.id));
  const names = networks.filter((n) => !uplinks.has(n.obj.id)).map((n) => n.props.name);
  const hosts = await vim.objectsOfType('HostSystem', ['summary.hardware.numCpuThreads', 'summary.hardware.memorySize'], signal);
  const largestHost =
    hosts.length === 0
      ? undefined
      : {
          cpuThreads: Math.max(...hosts.map((h) => Number(h.props['summary.hardware.numCpuThreads']) || 0)),
          memoryMiB: Math.max(...hosts.map((h) => Math.floor(Number(h.props['summary.hardware.memorySize']) / MiB) || 0)),
        };
  return { sddc, networks: [...new Set(names)].sort(), hardwareVersions: await hardwareVersions(vim, signal), largestHost };
}

async function hardwareVersions(vim: VimSession, signal?: AbortSignal): Promise<string[] | undefined> {
  try {
    const computes = await vim.objectsOfType('ComputeResource', ['environmentBrowser'], signal);
    const versions = new Set<string>();
    for (const c of computes) {
      const [type, id] = c.props.environmentBrowser?.split(':') ?? [];
      if (type !== 'EnvironmentBrowser' || !id) continue;
      for (const v of await vim.creatableHardwareVersions({ type, id }, signal)) versions.add(v);
    }
    return versions.size > 0 ? [...versions] : undefined;
  } catch (err) {
    if (signal?.aborted) throw err;
    return undefined;
  }
}
