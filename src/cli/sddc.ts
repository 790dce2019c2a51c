import { Command } from 'commander';
import type { Catalog, SddcRecord } from '../catalog/catalog';
import type { Config } from '../config';
import { VmhubError } from '../errors';
import type { Capacity } from '../topology/topology';
import { loadTopology } from '../topology/topology';
import { parseSize } from '../units';
import type { SddcRegistry } from './deps';
import { formatMiB } from './output';

/** The `sddc` command group, made once and shared by its subcommand modules. */
export function sddcGroup(program: Command): Command {
  const existing = program.commands.find((c) => c.name() === 'sddc');
  if (existing) return existing;
  return program
    .command('sddc')
    .description('the SDDCs images are deployed to: add, update, show, list, remove')
    .addHelpText(
      'after',
      '\nExamples:\n  vmhub sddc add east-3 --dc dc-east --cpus 32 --memory 256GiB --disk 2TiB\n  vmhub sddc update east-3 --cpus 48\n  vmhub sddc list',
    );
}

/** The SDDC registry on the catalog's `sddcs` collection (its unique index on name refuses a second add). */
export function catalogRegistry(catalog: Catalog): SddcRegistry {
  const get = (name: string) => catalog.sddcs.findOne({ name }, { projection: { _id: 0 } });
  return {
    get,
    async create(sddc) {
      const record: SddcRecord = { ...sddc, createdAt: new Date() };
      try {
        await catalog.sddcs.insertOne({ ...record });
      } catch (err) {
        // 11000: MongoDB's duplicate key, from the unique index on name.
        if ((err as { code?: unknown }).code === 11000) {
          throw new VmhubError(
            'InvalidInput',
            `SDDC ${sddc.name} is registered already; change it with \`vmhub sddc update ${sddc.name} …\``,
          );
        }
        throw err;
      }
      return record;
    },
    async update(name, changes) {
      const result = await catalog.sddcs.updateOne({ name }, { $set: changes });
      if (result.matchedCount === 0) throw unknownSddc(name);
      return (await get(name))!;
    },
  };
}

export function unknownSddc(name: string): VmhubError {
  return new VmhubError('UnknownSddc', `no SDDC named ${name} is registered; see \`vmhub sddc list\``);
}

export function checkDataCenter(config: Config, dc: string): string {
  const topology = loadTopology(config.topologyPath);
  if (!topology.dataCenters.some((d) => d.id === dc)) {
    throw new VmhubError(
      'InvalidTopology',
      `--dc ${dc}: no such data center; the topology (${config.topologyPath}) has ${topology.dataCenters.map((d) => d.id).join(', ')}`,
    );
  }
  return dc;
}

export function parseCpus(text: string): number {
  if (!/^[1-9]\d*$/.test(text.trim()))
    throw new VmhubError('InvalidInput', `--cpus ${text}: give a whole number of 1 or more, e.g. --cpus 32`);
  return Number(text);
}

/** A size flag in whole `unit`s (MiB for memory, GiB for disk); a size without a unit is refused rather than read as bytes. */
export function parseCapacitySize(flag: '--memory' | '--disk', text: string): number {
  const unit =
    flag === '--memory' ? { name: 'MiB', bytes: 2 ** 20, example: '256GiB' } : { name: 'GiB', bytes: 2 ** 30, example: '2TiB' };
  if (!/[a-z]\s*$/i.test(text))
    throw new VmhubError('InvalidInput', `${flag} ${text} has no unit: e.g. ${flag} ${text}GiB or ${flag} ${unit.example}`);
  let bytes: number;
  try {
    bytes = parseSize(text);
  } catch {
    throw new VmhubError(
      'InvalidInput',
      `${flag} ${text} is not a size: e.g. ${flag} ${unit.example} (units KiB, MiB, GiB, TiB)`,
    );
  }
  if (bytes < unit.bytes) throw new VmhubError('InvalidInput', `${flag} ${text} is less than 1 ${unit.name}`);
  return Math.floor(bytes / unit.bytes);
}

export function capacityText(c: Capacity): string {
  return `${c.cpus} CPU, ${formatMiB(c.memoryMiB)} memory, ${formatMiB(c.diskGiB * 1024)} disk`;
}

export function targetText(s: SddcRecord): string {
  return s.target?.kind === 'content-library'
    ? `content library ${s.target.library} on ${s.target.vcenter}`
    : "a directory of its agent's datastore";
}
