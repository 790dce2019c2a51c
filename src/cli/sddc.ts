import type { Command } from 'commander';
import type { SddcRecord } from '../catalog/sddc-records';
import { targetFromOptions, type SddcTarget, type TargetOptions } from '../sddc/target';

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

/** Where an SDDC's agent puts images: the options `sddc add` and `sddc update` share. */
export function targetOptions(command: Command): Command {
  return command
    .option('--vcenter <url>', "deploy into this vCenter's content library (default: a directory of the agent's datastore)")
    .option('--library <name>', 'the content library, created when missing (default vmhub)')
    .option('--datastore <name>', "a new library's datastore (default: the vCenter's first)")
    .option('--resource-pool <name>', 'where instantiate checks deploy (default: the first cluster)')
    .option('--username-env <VAR>', "the agent's variable holding the vCenter user (default VMHUB_VC_<NAME>_USERNAME)")
    .option('--password-env <VAR>', "the agent's variable holding the vCenter password (default VMHUB_VC_<NAME>_PASSWORD)")
    .option('--insecure-tls', "accept the vCenter's certificate without a CA (simulators, labs)")
    .option('--instantiate', 'check every deployment by making a VM from the item and removing it');
}

/** The target the options of {@link targetOptions} describe; undefined when none was given. */
export function givenTarget(name: string, opts: TargetOptions): SddcTarget | undefined {
  const { vcenter, library, datastore, resourcePool, usernameEnv, passwordEnv, insecureTls, instantiate } = opts;
  const target = { vcenter, library, datastore, resourcePool, usernameEnv, passwordEnv, insecureTls, instantiate };
  return Object.values(target).some((v) => v !== undefined) ? targetFromOptions(name, target) : undefined;
}

export function targetText(s: SddcRecord): string {
  return s.target?.kind === 'content-library'
    ? `content library ${s.target.library} on ${s.target.vcenter}`
    : "a directory of its agent's datastore";
}
