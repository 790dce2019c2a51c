import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { VmhubError } from '../shared/errors';
import { boundedDetail, OPERATOR_CHECK_NAME, type GateCheckResult, type OperatorCheckInput } from '../shared/health-gate';
import { isLoopbackUrl } from '../shared/target-kinds/content-library';

/**
 * A health gate's operator check: an HTTP endpoint or a program of the operator's that is told the SDDC, the
 * item and the VM, and answers pass or fail. Checks are defined by name in the control worker's
 * VMHUB_OPERATOR_CHECKS_FILE; a workflow input only names one, so whoever can start a workflow can run no
 * program and reach no address the operator did not list.
 */
export type OperatorCheckSpec = { url: string; timeoutSeconds?: number } | { command: string[]; timeoutSeconds?: number };

export const DEFAULT_OPERATOR_CHECK_TIMEOUT_SECONDS = 300;
/** An answer is a verdict and a line, not a download: more than this is not read. */
const ANSWER_LIMIT = 64 * 1024;

/** The check `name` of the checks file, or UnknownOperatorCheck; a malformed file is InvalidInput. */
export function findOperatorCheck(file: string | undefined, name: string): OperatorCheckSpec {
  if (!file) {
    throw new VmhubError(
      'UnknownOperatorCheck',
      `no operator check named ${JSON.stringify(name)}: the control worker has no VMHUB_OPERATOR_CHECKS_FILE`,
    );
  }
  const checks = loadOperatorChecks(file);
  const spec = Object.hasOwn(checks, name) ? checks[name] : undefined;
  if (!spec) {
    const known = Object.keys(checks);
    throw new VmhubError(
      'UnknownOperatorCheck',
      `no operator check named ${JSON.stringify(name.slice(0, 64))} in VMHUB_OPERATOR_CHECKS_FILE; it defines ${known.join(', ') || 'none'}`,
    );
  }
  return spec;
}

/** Reads the checks file anew each time, so an edit needs no worker restart. */
export function loadOperatorChecks(file: string): Record<string, OperatorCheckSpec> {
  const fail = (msg: string): never => {
    throw new VmhubError('InvalidInput', `VMHUB_OPERATOR_CHECKS_FILE ${file}: ${msg}`);
  };
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    // The parser quotes the text it stopped at, which may hold a URL's token: only where it stopped is said.
    const at = /position \d+/.exec((err as Error).message)?.[0];
    return fail(`cannot be read as JSON${at ? ` (at ${at})` : ''}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return fail('must be an object of checks by name');
  const checks: Record<string, OperatorCheckSpec> = {};
  for (const [name, value] of Object.entries(raw as Record<string, unknown>)) {
    if (!OPERATOR_CHECK_NAME.test(name))
      fail(
        `check name ${JSON.stringify(name.slice(0, 64))} must be lower-case letters, digits, ., _ and -, as a rollout names it`,
      );
    checks[name] = parseSpec(value, (msg) => fail(`check ${name}: ${msg}`));
  }
  return checks;
}

function parseSpec(value: unknown, fail: (msg: string) => never): OperatorCheckSpec {
  if (typeof value !== 'object' || value === null) return fail('must be an object with a url or a command');
  const { url, command, timeoutSeconds, ...rest } = value as Record<string, unknown>;
  if (Object.keys(rest).length > 0) fail(`unknown field ${Object.keys(rest)[0]}`);
  if (timeoutSeconds !== undefined && !(Number.isInteger(timeoutSeconds) && (timeoutSeconds as number) > 0))
    fail('timeoutSeconds must be a whole number of seconds');
  const timeout = timeoutSeconds === undefined ? {} : { timeoutSeconds: timeoutSeconds as number };
  if ((url === undefined) === (command === undefined)) return fail('must have either a url or a command');
  if (url !== undefined) {
    let parsed: URL | undefined;
    try {
      parsed = new URL(String(url));
    } catch {
      return fail('url is not a URL');
    }
    // Plain http only to this machine: the request tells which VM of which SDDC is being checked.
    if (!(parsed.protocol === 'https:' || (parsed.protocol === 'http:' && isLoopbackUrl(parsed))))
      fail('url must be https (http only on the loopback)');
    return { url: parsed.href, ...timeout };
  }
  const argv = command as unknown[];
  if (!Array.isArray(argv) || argv.length === 0 || !argv.every((a) => typeof a === 'string'))
    return fail('command must be a list of strings: the program and its arguments');
  // No search of PATH: the file says exactly which program runs.
  if (!(argv[0] as string).startsWith('/')) fail('the command must start with an absolute path');
  return { command: argv as string[], ...timeout };
}

/** Runs the check and answers its verdict; a check that cannot be reached or times out has failed. */
export async function runOperatorCheck(
  spec: OperatorCheckSpec,
  input: OperatorCheckInput,
  options: { signal?: AbortSignal } = {},
): Promise<GateCheckResult> {
  const timeoutMs = (spec.timeoutSeconds ?? DEFAULT_OPERATOR_CHECK_TIMEOUT_SECONDS) * 1000;
  const answer =
    'url' in spec
      ? await postCheck(spec.url, checkRequest(input), timeoutMs, options.signal)
      : await commandCheck(spec.command, input, timeoutMs, options.signal);
  return { check: 'operator', passed: answer.passed, detail: boundedDetail(`${input.check}: ${answer.detail}`) };
}

/** What a check is told, by POST body or on a command's stdin: which VM of which SDDC, from which item. */
function checkRequest(input: OperatorCheckInput) {
  return { sddc: input.sddc, image: input.image, version: input.version, item: input.item, vm: input.vm };
}

interface Answer {
  passed: boolean;
  detail: string;
}

/** POSTs the request as JSON: 2xx passes unless the JSON answer says `"pass": false`; its `reason` is the detail. */
async function postCheck(url: string, request: object, timeoutMs: number, signal?: AbortSignal): Promise<Answer> {
  const timeout = AbortSignal.timeout(timeoutMs);
  try {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(request),
      // A redirect would send the SDDC, item and VM to a host the checks file does not name.
      redirect: 'error',
      signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
    });
    const body = jsonObject(await readAnswer(res));
    const ok = res.status >= 200 && res.status < 300;
    return {
      passed: ok && body?.pass !== false,
      detail: typeof body?.reason === 'string' ? body.reason : `HTTP ${res.status} ${res.statusText}`.trim(),
    };
  } catch (err) {
    if (signal?.aborted) throw signal.reason ?? err;
    if (timeout.aborted) return { passed: false, detail: `timed out after ${timeoutMs / 1000} s` };
    // The address is the operator's, and may carry a token: only the cause is told.
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    return { passed: false, detail: `no answer: ${cause?.code ?? cause?.message ?? (err as Error).message}` };
  }
}

async function readAnswer(res: Response): Promise<string> {
  if (!res.body) return '';
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    chunks.push(Buffer.from(chunk));
    size += chunk.length;
    if (size >= ANSWER_LIMIT) break;
  }
  return Buffer.concat(chunks).subarray(0, ANSWER_LIMIT).toString('utf8');
}

function jsonObject(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Spawns the program without a shell, the request as JSON on its stdin and in VMHUB_CHECK_* variables: exit
 * 0 passes, the last line it wrote is the detail. Its environment holds only PATH and those, none of the
 * worker's own settings or secrets. At the timeout its whole process group is killed.
 */
function commandCheck(argv: string[], input: OperatorCheckInput, timeoutMs: number, signal?: AbortSignal): Promise<Answer> {
  const env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    VMHUB_CHECK_NAME: input.check,
    VMHUB_CHECK_SDDC: input.sddc,
    VMHUB_CHECK_IMAGE: input.image,
    VMHUB_CHECK_VERSION: input.version,
    VMHUB_CHECK_VCENTER: input.item.vcenter,
    VMHUB_CHECK_LIBRARY: input.item.library,
    VMHUB_CHECK_ITEM_ID: input.item.itemId,
    VMHUB_CHECK_ITEM_NAME: input.item.itemName,
    VMHUB_CHECK_VM: input.vm,
  };
  return new Promise<Answer>((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), { env, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    let output = '';
    let timedOut = false;
    let settled = false;
    const keep = (chunk: Buffer) => {
      output = (output + chunk.toString('utf8')).slice(-ANSWER_LIMIT);
    };
    const kill = () => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      kill();
    }, timeoutMs);
    signal?.addEventListener('abort', kill, { once: true });
    const settle = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', kill);
      fn();
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    // A check that does not read its input closes stdin early: not a failure of the check.
    child.stdin.on('error', () => undefined);
    child.on('error', (err) => settle(() => resolve({ passed: false, detail: `could not start: ${err.message}` })));
    child.on('close', (code, killedBy) =>
      settle(() => {
        if (signal?.aborted) return reject(signal.reason as Error);
        if (timedOut) return resolve({ passed: false, detail: `timed out after ${timeoutMs / 1000} s` });
        const last = output.trimEnd().split('\n').pop()?.trim();
        resolve({ passed: code === 0, detail: last || (code === null ? `killed by ${killedBy}` : `exited ${code}`) });
      }),
    );
    child.stdin.end(JSON.stringify(checkRequest(input)));
  });
}
