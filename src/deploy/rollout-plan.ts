import type { Catalog } from '../catalog/catalog';
import type { SddcRecord } from '../catalog/sddc-records';
import { assertDeployable } from '../lifecycle/deprecation';
import { VmhubError } from '../shared/errors';
import type { PlannedWave, RolloutInput, RolloutPlan, WaveSelector, WaveSpec } from '../shared/rollout-input';
import { validateRolloutInput } from '../shared/rollout-input';

type RolloutCatalog = Pick<Catalog, 'versions' | 'sddcs' | 'channels'>;

/** The SDDCs a wave selects, by name order: those it names, and those in its data centers carrying its labels. */
export function selectWave(sddcs: readonly SddcRecord[], wave: WaveSelector): SddcRecord[] {
  const named = new Set(wave.sddcs ?? []);
  const dcs = wave.dataCenters && wave.dataCenters.length > 0 ? new Set(wave.dataCenters) : undefined;
  const labels = Object.entries(wave.labels ?? {});
  const byTerms = dcs !== undefined || labels.length > 0;
  return sddcs.filter(
    (s) => named.has(s.name) || (byTerms && (!dcs || dcs.has(s.dataCenter)) && labels.every(([k, v]) => s.labels?.[k] === v)),
  );
}

/** A wave as the operator wrote it: `east-1,east-2`, `dc=dc-west`, `ring=canary`. */
export function describeWave(wave: WaveSelector): string {
  const terms = [
    ...(wave.sddcs ?? []),
    ...(wave.dataCenters ?? []).map((d) => `dc=${d}`),
    ...Object.entries(wave.labels ?? {}).map(([k, v]) => `${k}=${v}`),
  ];
  return terms.join(',');
}

/**
 * Resolves a rollout against the catalog: the version (available, deployable), the waves (the input's, or
 * the image's stored policy) as lists of registered SDDCs, and the version the channel points at now. An
 * SDDC named but not registered, a wave that selects nothing, and an SDDC in two waves are refused: a
 * rollout reaches each SDDC once, in the wave the operator meant.
 */
export async function planRollout(
  catalog: RolloutCatalog,
  raw: RolloutInput,
  checkOperatorCheck: (name: string) => unknown = () => undefined,
): Promise<RolloutPlan> {
  const input = validateRolloutInput(raw);
  const record = await catalog.versions.resolve(input.image, input.version);
  // A rollback returns to a version the channel held: its end of life does not stop that.
  if (record) assertDeployable(record, new Date(), input.rollback === true);
  if (!record || record.status !== 'available') {
    throw new VmhubError('UnknownImage', `${input.image}@${input.version} is not an available version in the catalog`);
  }
  const waves = input.waves.length > 0 ? input.waves : await policyWaves(catalog, input.image);
  const registered = await catalog.sddcs.list();
  const known = new Set(registered.map((s) => s.name));
  const placed = new Map<string, number>();
  const planned: PlannedWave[] = waves.map((wave, i) => {
    const unknown = (wave.sddcs ?? []).filter((n) => !known.has(n));
    if (unknown.length > 0) {
      throw new VmhubError('UnknownSddc', `wave ${i + 1} names SDDCs that are not registered: ${unknown.join(', ')}`);
    }
    const selected = selectWave(registered, wave);
    const sddcs = selected.map((s) => s.name);
    const directory = selected.filter((s) => s.target?.kind !== 'content-library').map((s) => s.name);
    if (input.channel && directory.length > 0) {
      throw new VmhubError(
        'InvalidInput',
        `wave ${i + 1} selects SDDCs without a content library (${directory.slice(0, 5).join(', ')}): a channel's item lives in a vCenter's library`,
      );
    }
    if (wave.gate?.operatorCheck) checkOperatorCheck(wave.gate.operatorCheck);
    if (sddcs.length === 0)
      throw new VmhubError('InvalidInput', `wave ${i + 1} (${describeWave(wave)}) selects no registered SDDC`);
    for (const name of sddcs) {
      const other = placed.get(name);
      if (other !== undefined) throw new VmhubError('InvalidInput', `SDDC ${name} is in wave ${other + 1} and wave ${i + 1}`);
      placed.set(name, i);
    }
    return { name: wave.name ?? describeWave(wave), sddcs, approval: wave.approval === true, gate: wave.gate ?? {} };
  });
  const channel = input.channel ? await catalog.channels.get(input.image, input.channel) : null;
  return {
    image: record.image,
    version: record.version,
    ...(input.channel ? { channel: input.channel } : {}),
    ...(channel ? { channelBefore: channel.version } : {}),
    waves: planned,
  };
}

async function policyWaves(catalog: RolloutCatalog, image: string): Promise<WaveSpec[]> {
  const policy = await catalog.channels.getPolicy(image);
  if (!policy || policy.waves.length === 0) {
    throw new VmhubError(
      'InvalidInput',
      `no waves given and ${image} has no rollout policy: give --wave, or store one with \`vmhub rollout policy ${image} --wave <sddcs>\``,
    );
  }
  return policy.waves;
}
