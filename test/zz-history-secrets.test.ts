import { randomUUID } from 'node:crypto';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { loadConfig } from '../src/config';
import { temporalBinary } from '../src/dev-services/tools';
import { CheckServices } from '../src/workflows/check-services';
import { AZURITE_DEV_KEY, credentialValues } from './harness/credentials';
import { startWorld } from './helpers';

/**
 * Runs after every other test file (see jest.sequencer.js): exports the history of every workflow the
 * suite left on the test server, as an operator would with `temporal workflow show`, and fails on any
 * storage credential in it. Histories are kept for the namespace's retention and shown to anyone with
 * read access, so credentials must stay in the workers' environment.
 */
const PATTERNS: Array<{ name: string; pattern: RegExp }> = [
  { name: 'an AccountKey= setting', pattern: /AccountKey=/i },
  { name: 'a connection string', pattern: /DefaultEndpointsProtocol=|SharedAccessSignature=/i },
  { name: 'a SAS signature (sig=)', pattern: /(?<![A-Za-z0-9_])sig=/i },
];

const BASE64 = /^(?:[A-Za-z0-9+/]{4})+(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Where a history (as `temporal workflow show --output json` prints it) holds a credential: each
 * finding names the JSON path and what was found, never the value. Payloads are base64 in that
 * output, so every string that decodes as base64 is searched decoded as well.
 */
function findCredentials(history: unknown, secrets: string[]): string[] {
  const findings: string[] = [];
  const check = (text: string, where: string) => {
    const plain = text.replace(/\\\//g, '/');
    for (const secret of secrets) if (plain.includes(secret)) findings.push(`${where}: a storage account key`);
    for (const { name, pattern } of PATTERNS) if (pattern.test(plain)) findings.push(`${where}: ${name}`);
  };
  const walk = (value: unknown, where: string): void => {
    if (typeof value === 'string') {
      check(value, where);
      if (value.length >= 8 && BASE64.test(value)) check(Buffer.from(value, 'base64').toString('utf8'), `${where} (decoded)`);
    } else if (Array.isArray(value)) {
      value.forEach((v, i) => walk(v, `${where}[${i}]`));
    } else if (value !== null && typeof value === 'object') {
      for (const [k, v] of Object.entries(value)) walk(v, `${where}.${k}`);
    }
  };
  walk(history, '$');
  return findings;
}

const run = promisify(execFile);

async function temporalJson(args: string[], namespace = loadConfig().temporal.namespace): Promise<unknown> {
  const { stdout } = await run(
    temporalBinary(),
    [...args, '--output', 'json', '--address', loadConfig().temporal.address, '--namespace', namespace],
    { maxBuffer: 512 * 1024 * 1024 },
  );
  return JSON.parse(stdout);
}

interface Execution {
  namespace: string;
  execution: { workflowId: string; runId: string };
}

/** Every run in every namespace the tests used: a test file may keep a namespace of its own. */
async function listExecutions(): Promise<Execution[]> {
  const namespaces = (await temporalJson(['operator', 'namespace', 'list'])) as Array<{ namespaceInfo: { name: string } }>;
  const lists = await Promise.all(
    namespaces
      .map((n) => n.namespaceInfo.name)
      .filter((name) => name !== 'temporal-system')
      .map(async (namespace) =>
        ((await temporalJson(['workflow', 'list'], namespace)) as Execution[]).map((e) => ({ ...e, namespace })),
      ),
  );
  return lists.flat();
}

/** Runs one small workflow, so a run of this file alone still has a history to check. */
async function runCheckServices(): Promise<void> {
  const world = await startWorld();
  try {
    const token = randomUUID();
    await world.client.workflow.execute(CheckServices, {
      args: [token],
      taskQueue: world.config.taskQueue,
      workflowId: `history-secrets-${token}`,
    });
  } finally {
    await world.close();
  }
}

async function inBatches<T>(items: T[], size: number, each: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(each));
}

describe('workflow histories', () => {
  it('finds a credential wherever it hides in an exported history', () => {
    const encoded = Buffer.from(JSON.stringify({ conn: `BlobEndpoint=x;AccountKey=${AZURITE_DEV_KEY}` })).toString('base64');
    const history = { events: [{ input: { payloads: [{ metadata: { encoding: 'anNvbi9wbGFpbg==' }, data: encoded }] } }] };
    expect(findCredentials(history, [AZURITE_DEV_KEY])).toEqual([
      '$.events[0].input.payloads[0].data (decoded): a storage account key',
      '$.events[0].input.payloads[0].data (decoded): an AccountKey= setting',
    ]);
    expect(findCredentials({ url: 'https://a.blob.core.windows.net/c/b?sv=2024&sig=abc' }, [])).toEqual([
      '$.url: a SAS signature (sig=)',
    ]);
    expect(findCredentials({ design: 'signature', sigma: 'sig', token: 'abc' }, [AZURITE_DEV_KEY])).toEqual([]);
  });

  it('hold no storage credential, in any workflow the tests ran', async () => {
    let executions = await listExecutions();
    if (executions.length === 0) {
      await runCheckServices();
      // The visibility store lags the history a little.
      for (let i = 0; i < 50 && executions.length === 0; i++) {
        await new Promise((resolve) => setTimeout(resolve, 200));
        executions = await listExecutions();
      }
    }
    expect(executions.length).toBeGreaterThan(0);

    const secrets = credentialValues();
    const findings: string[] = [];
    let checked = 0;
    await inBatches(executions, 8, async ({ namespace, execution: { workflowId, runId } }) => {
      const history = await temporalJson(['workflow', 'show', '--workflow-id', workflowId, '--run-id', runId], namespace);
      expect((history as { events?: unknown[] }).events?.length).toBeGreaterThan(0);
      findings.push(...findCredentials(history, secrets).map((f) => `${workflowId} (${runId}) ${f}`));
      checked++;
    });
    expect(checked).toBe(executions.length);
    expect(findings).toEqual([]);
  });
});
