import { Option, type Command } from 'commander';
import { VmhubError } from '../shared/errors';
import { ALL_SDDCS, validateSddcName } from '../shared/names';
import type { OvfPolicy } from '../shared/ovf-policy';
import { TARGET_OPTIONS, targetFromOptions, type SddcTarget, type TargetOptions } from '../shared/sddc-target';

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

/** The names commander gives those options' values. */
const TARGET_KEYS = TARGET_OPTIONS.map((o) => new Option(o.flags).attributeName() as keyof TargetOptions);

/** The target the options of {@link targetOptions} describe; undefined when none was given. */
export function givenTarget(name: string, opts: TargetOptions): SddcTarget | undefined {
  const target = Object.fromEntries(TARGET_KEYS.map((k) => [k, opts[k]])) as TargetOptions;
  return Object.values(target).some((v) => v !== undefined) ? targetFromOptions(name, target) : undefined;
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
