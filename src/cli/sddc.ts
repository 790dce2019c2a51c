import { Option, type Command } from 'commander';
import { VmhubError } from '../shared/errors';
import { ALL_SDDCS, validateSddcName } from '../shared/names';
import type { OvfPolicy } from '../shared/ovf-policy';
import {
  describeTarget,
  libraryOf,
  TARGET_OPTIONS,
  targetFromOptions,
  type SddcTarget,
  type TargetOptions,
} from '../shared/sddc-target';
import { withNetworkMap } from '../shared/target-kinds/content-library';

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

/** Where an SDDC's agent puts images: the options `sddc add` and `sddc update` share, every target kind's. */
export function targetOptions(command: Command): Command {
  return TARGET_OPTIONS.reduce((c, o) => c.option(o.flags, o.description), command);
}

/** `--require-manifest` and `--require-ovf-cert` as commander gives them (false for their `--no-` forms). */
export interface OvfPolicyOptions {
  requireManifest?: boolean;
  requireOvfCert?: boolean;
}

/** The SDDC's OVF policy options; `sddc update` can also clear each (`--no-require-manifest`). */
export function ovfPolicyOptions(command: Command, clearable: boolean): Command {
  command
    .option('--require-manifest', 'refuse a deploy of an OVF image whose manifest does not list every member (or that has none)')
    .option('--require-ovf-cert', 'refuse a deploy of an OVF image whose certificate is not verified against the trusted CAs');
  if (!clearable) return command;
  return command
    .option('--no-require-manifest', 'deploy OVF images without a manifest again')
    .option('--no-require-ovf-cert', 'deploy OVF images without a verified certificate again');
}

/** The policy the options give, with only the demands given; undefined when none was given. */
export function givenOvfPolicy(opts: OvfPolicyOptions): OvfPolicy | undefined {
  const policy: OvfPolicy = {};
  if (opts.requireManifest !== undefined) policy.requireManifest = opts.requireManifest;
  if (opts.requireOvfCert !== undefined) policy.requireVerifiedCertificate = opts.requireOvfCert;
  return Object.keys(policy).length > 0 ? policy : undefined;
}

/** `--label key=value`, repeatable; on `sddc update`, `--label key=` clears one. */
export function labelOption(command: Command, clearable: boolean): Command {
  const more = clearable ? '; key= clears it' : '';
  return command.option(
    '--label <key=value>',
    `a label rollouts select SDDCs by, e.g. ring=canary (repeatable${more})`,
    (value: string, all: string[] = []) => [...all, value],
  );
}

/** The labels `--label` gives: null for `key=` (a clear), undefined when none was given. */
export function givenLabels(values: string[] | undefined, clearable: boolean): Record<string, string | null> | undefined {
  if (!values || values.length === 0) return undefined;
  const labels: Record<string, string | null> = {};
  for (const v of values) {
    const eq = v.indexOf('=');
    if (eq <= 0) throw new VmhubError('InvalidInput', `--label ${JSON.stringify(v)} must be key=value, e.g. --label ring=canary`);
    const value = v.slice(eq + 1);
    if (value === '' && !clearable) throw new VmhubError('InvalidInput', `--label ${v} gives no value, e.g. --label ring=canary`);
    labels[v.slice(0, eq)] = value === '' ? null : value;
  }
  return labels;
}

/** Labels as `sddc show` and `sddc list` print them. */
export function describeLabels(labels: Record<string, string> | undefined): string {
  const entries = Object.entries(labels ?? {});
  return entries.length === 0 ? 'none' : entries.map(([k, v]) => `${k}=${v}`).join(', ');
}

/** `--network-map <from=to>`, repeatable, of `sddc add` and `sddc update`. */
export function networkMapOption(command: Command): Command {
  return command.option(
    '--network-map <from=to>',
    "deploy a descriptor's network <from> onto the vCenter's network <to> (repeatable; <from>= removes the mapping)",
    (value: string, previous: string[] = []) => [...previous, value],
  );
}

/** The target with the `--network-map` changes applied: only a content library has networks to map. */
export function mappedTarget(
  name: string,
  target: SddcTarget | undefined,
  changes: readonly string[] = [],
): SddcTarget | undefined {
  if (changes.length === 0) return target;
  const library = libraryOf(target);
  if (!library) {
    throw new VmhubError(
      'InvalidInput',
      `--network-map maps networks of a vCenter, and ${name} deploys into ${describeTarget(target)}; give --vcenter too`,
    );
  }
  return withNetworkMap(library, changes);
}

/** The names commander gives those options' values. */
const TARGET_KEYS = TARGET_OPTIONS.map((o) => new Option(o.flags).attributeName() as keyof TargetOptions);

/** The target the options of {@link targetOptions} describe; undefined when none was given. */
export function givenTarget(name: string, opts: TargetOptions): SddcTarget | undefined {
  const target = Object.fromEntries(TARGET_KEYS.map((k) => [k, opts[k]])) as TargetOptions;
  return Object.values(target).some((v) => v !== undefined) ? targetFromOptions(name, target) : undefined;
}

/** Whether `--guest-check` is the only target option given: `sddc update` then changes that setting alone. */
export function onlyGuestCheck(opts: TargetOptions): boolean {
  const given = TARGET_KEYS.filter((k) => opts[k] !== undefined && opts[k] !== false);
  return given.length === 1 && given[0] === 'guestCheck';
}

/**
 * The one SDDC `sddc update` or `sddc remove` changes, its name checked before the catalog is asked (so an
 * unknown name's advice, `vmhub sddc add <name>`, names a name that command accepts). "all" is refused:
 * these commands change one SDDC at a time; `example` is the same command for one, quoted (so the test
 * of advice in messages reads it).
 */
export function oneSddcName(name: string, example: string): string {
  if (name === ALL_SDDCS) {
    throw new VmhubError(
      'InvalidInput',
      `"all" names every SDDC, and this command changes one at a time: name one, e.g. ${example} (\`vmhub sddc list\` shows them)`,
    );
  }
  return validateSddcName(name, 'SDDC');
}
