import type { Command } from 'commander';
import type { WorkflowExecutionInfo } from '@temporalio/client';
import { VmhubError } from '../shared/errors';
import { IMAGE_KEY, VERSION_KEY } from '../workflows/search-attributes';
import { validateImageName } from '../shared/names';
import { unpolledQueues } from './checks';
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
  /** The run's workflow task queue, and whether a worker polls it (null once the run has closed). */
  taskQueue: string;
  workerPolling: boolean | null;
}

export interface RunsResult {
  runs: RunRow[];
}

/**
 * The runs an operator or a schedule starts, by the word the table gives each. Left out: the batches a
 * deploy or retire fans out into (DeploySddcBatch, RetireSddcBatch; `vmhub status <parent>` shows their
 * rows) and CheckServices, a health probe. A retention run's retires are listed as retires.
 */
export const RUN_KINDS: Readonly<Record<string, string>> = {
  PublishImage: 'publish',
  DeployToSDDCs: 'deploy',
  RetireImage: 'retire',
  ApplyRetention: 'retention',
  VerifyReplicas: 'verify',
};

/**
 * The visibility query for vmhub's runs, of one image when given (names are validated). A run finds its
 * image by search attribute once it has started; one that never ran (no worker polls its queue) only by
 * its ID's `<kind>:<image>:` prefix.
 */
export function runsQuery(image?: string): string {
  const types = `WorkflowType IN (${Object.keys(RUN_KINDS)
    .map((t) => `'${t}'`)
    .join(', ')})`;
  if (!image) return types;
  const name = validateImageName(image, '--image');
  const prefixes = ['publish', 'deploy', 'retire', 'retention', 'verify'].map(
    (kind) => ` OR WorkflowId STARTS_WITH '${kind}:${name}:'`,
  );
  return `${types} AND (VmImage = '${name}'${prefixes.join('')})`;
}

/** Recent runs of every kind, newest first, from Temporal's list with vmhub's search attributes. */
export async function run(options: RunsOptions, deps: CliDeps): Promise<RunsResult> {
  const client = await deps.temporal();
  const found: WorkflowExecutionInfo[] = [];
  for await (const w of client.workflow.list({ query: runsQuery(options.image), pageSize: options.limit })) {
    found.push(w);
    if (found.length >= options.limit) break;
  }
  const idle = await unpolledQueues(client, found);
  const runs = found.map((w) => ({
    workflowId: w.workflowId,
    type: w.type,
    status: statusWord(w.status.name),
    image: w.typedSearchAttributes.get(IMAGE_KEY) ?? null,
    version: w.typedSearchAttributes.get(VERSION_KEY) ?? null,
    startTime: w.startTime.toISOString(),
    closeTime: w.closeTime?.toISOString() ?? null,
    taskQueue: w.taskQueue,
    workerPolling: w.status.name === 'RUNNING' ? !idle.has(w.taskQueue) : null,
  }));
  return { runs };
}

export function renderText(r: RunsResult): string[] {
  if (r.runs.length === 0) return ['no runs'];
  const unpolled = [...new Set(r.runs.filter((w) => w.workerPolling === false).map((w) => w.taskQueue))];
  return [
    ...table(
      ['STARTED', 'TYPE', 'STATUS', 'IMAGE', 'WORKFLOW ID'],
      r.runs.map((w) => [
        w.startTime.replace(/\.\d+Z$/, 'Z'),
        RUN_KINDS[w.type] ?? w.type,
        w.workerPolling === false ? `${w.status} (no worker)` : w.status,
        w.image ? `${w.image}${w.version ? `@${w.version}` : ''}` : '-',
        w.workflowId,
      ]),
    ),
    ...unpolled.map(
      (q) =>
        `no worker polls task queue ${q}: its runs wait; start one (VMHUB_TASK_QUEUE=${q} npm run worker) or stop them with \`vmhub cancel --terminate <workflow-id>\``,
    ),
  ];
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
    .description('recent runs, newest first: publishes, deploys, retires, retention runs and replica verifications')
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
