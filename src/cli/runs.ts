import type { Command } from 'commander';
import { VmhubError } from '../shared/errors';
import { IMAGE_KEY, VERSION_KEY } from '../workflows/search-attributes';
import { validateImageName } from '../shared/names';
import { examples, jsonOption } from './command';
import type { CliDeps } from './deps';
import { print, statusWord, table } from './output';

export interface RunsOptions {
  image?: string;
  limit: number;
}

export interface RunRow {
  workflowId: string;
  type: string;
  status: string;
  image: string | null;
  version: string | null;
  startTime: string;
  closeTime: string | null;
}

export interface RunsResult {
  runs: RunRow[];
}

/** The visibility query for vmhub's publishes and deploys, of one image when given (names are validated). */
export function runsQuery(image?: string): string {
  return `WorkflowType IN ('PublishImage', 'DeployToSDDCs')${image ? ` AND VmImage = '${validateImageName(image, '--image')}'` : ''}`;
}

/** Recent publishes and deploys, newest first, from Temporal's list with vmhub's search attributes. */
export async function run(options: RunsOptions, deps: CliDeps): Promise<RunsResult> {
  const client = await deps.temporal();
  const runs: RunRow[] = [];
  for await (const w of client.workflow.list({ query: runsQuery(options.image), pageSize: options.limit })) {
    runs.push({
      workflowId: w.workflowId,
      type: w.type,
      status: statusWord(w.status.name),
      image: w.typedSearchAttributes.get(IMAGE_KEY) ?? null,
      version: w.typedSearchAttributes.get(VERSION_KEY) ?? null,
      startTime: w.startTime.toISOString(),
      closeTime: w.closeTime?.toISOString() ?? null,
    });
    if (runs.length >= options.limit) break;
  }
  return { runs };
}

export function renderText(r: RunsResult): string[] {
  if (r.runs.length === 0) return ['no publishes or deploys'];
  return table(
    ['STARTED', 'TYPE', 'STATUS', 'IMAGE', 'WORKFLOW ID'],
    r.runs.map((w) => [
      w.startTime.replace(/\.\d+Z$/, 'Z'),
      w.type === 'PublishImage' ? 'publish' : 'deploy',
      w.status,
      w.image ? `${w.image}${w.version ? `@${w.version}` : ''}` : '-',
      w.workflowId,
    ]),
  );
}

export function parseLimit(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 1 || n > 1000)
    throw new VmhubError('InvalidInput', `--limit expects a whole number from 1 to 1000, got "${text}"`);
  return n;
}

export function register(program: Command, deps: CliDeps): void {
  program
    .command('runs')
    .description('recent publishes and deploys, newest first')
    .option('--image <name>', 'only those of this image')
    .option('--limit <n>', 'how many to list', '20')
    .addOption(jsonOption())
    .addHelpText('after', examples('vmhub runs', 'vmhub runs --image ubuntu-app --limit 5'))
    .action(async (opts: { image?: string; limit: string; json?: boolean }) => {
      // Checked before Temporal is reached, as every command checks the names it is given.
      const image = opts.image === undefined ? undefined : validateImageName(opts.image, '--image');
      const result = await run({ image, limit: parseLimit(opts.limit) }, deps);
      print(deps.io, Boolean(opts.json), result, () => renderText(result));
    });
}
