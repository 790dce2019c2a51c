import { randomUUID } from 'node:crypto';
import type { Command } from 'commander';
import type { VerifyResult } from '../shared/lifecycle-input';
import { parseRef } from './checks';
import { validateImageName, validateSddcNames } from '../shared/names';
import { VmhubError } from '../shared/errors';
import * as verifySddcs from './verify-sddcs';
import { requireWorker } from './operations';
import type { CliDeps } from './deps';
import { print } from './output';
import { plural } from '../shared/units';

export interface VerifyOptions {
  image?: string;
  version?: string;
}

export type VerifyCliResult = VerifyResult & { workflowId: string };

/** Runs VerifyReplicas now, for one version, one image, or everything, and waits for it. */
export async function run(options: VerifyOptions, deps: CliDeps): Promise<VerifyCliResult> {
  const client = await deps.temporal();
  await requireWorker(client, deps.config);
  const scope = options.image ? `${options.image}${options.version ? `:${options.version}` : ''}` : 'all';
  const workflowId = `verify:${scope}:${randomUUID().slice(0, 8)}`;
  const result = (await client.workflow.execute('VerifyReplicas', {
    args: [options],
    taskQueue: deps.config.taskQueue,
    workflowId,
    staticSummary: `Verify the replicas of ${scope === 'all' ? 'every version' : scope}`,
  })) as VerifyResult;
  return { workflowId, ...result };
}

export function renderText(r: VerifyCliResult): string[] {
  return [
    `checked ${plural(r.replicasChecked, 'replica')} of ${plural(r.versionsChecked, 'version')}  (workflow ${r.workflowId})`,
    r.findingsTotal === 0 ? 'every replica matches its primary' : `${r.findingsTotal} differed from the primary:`,
    ...r.findings.map(
      (f) =>
        `  ${`${f.image}@${f.version}`.padEnd(28)} ${f.location.padEnd(14)} ${f.repaired ? 'replicated again' : 'NOT repaired'}: ${f.reason}`,
    ),
    ...(r.versionsLeft
      ? [`${plural(r.versionsLeft, 'version')} left for a later run: this run's share of VMHUB_VERIFY_BYTES_PER_DAY is read`]
      : []),
  ];
}

export function register(program: Command, deps: CliDeps): void {
  program
    .command('verify')
    .description(
      're-check replicas now (block list, size, then their bytes hashed against the SHA-256), and replicate again what differs; with --sddcs, the copies on the SDDCs',
    )
    .argument('[ref]', 'image@version, or an image, or nothing for every version')
    .option(
      '--sddcs [names]',
      "check the SDDCs' copies against the catalog's digests instead (every SDDC, or a comma-separated list)",
    )
    .option('--repair', 'with --sddcs: deploy the same version again where a copy drifted')
    .option('--json', 'print one JSON document on stdout')
    .addHelpText(
      'after',
      '\nExamples:\n  vmhub verify\n  vmhub verify ubuntu-app\n  vmhub verify ubuntu-app@1.2.0\n  vmhub verify --sddcs\n  vmhub verify --sddcs east-1,west-1 --repair',
    )
    .action(async (ref: string | undefined, opts: { json?: boolean; sddcs?: string | true; repair?: boolean }) => {
      if (opts.sddcs !== undefined || opts.repair) {
        if (ref !== undefined || opts.sddcs === undefined) {
          throw new VmhubError('InvalidInput', '--sddcs checks SDDCs, not an image; --repair needs --sddcs');
        }
        const sddcs =
          opts.sddcs === true
            ? undefined
            : validateSddcNames(
                opts.sddcs.split(',').map((n) => n.trim()),
                '--sddcs',
              );
        const result = await verifySddcs.run({ ...(sddcs ? { sddcs } : {}), repair: opts.repair === true }, deps);
        print(deps.io, Boolean(opts.json), result, () => verifySddcs.renderText(result));
        // Every drifted copy counts, not only those listed.
        if (result.unrepaired > 0) process.exitCode = 2;
        return;
      }
      const options: VerifyOptions =
        ref === undefined ? {} : ref.includes('@') ? parseRef(ref, false) : { image: validateImageName(ref) };
      const result = await run(options, deps);
      print(deps.io, Boolean(opts.json), result, () => renderText(result));
      if (result.findings.some((f) => !f.repaired)) process.exitCode = 2;
    });
}
