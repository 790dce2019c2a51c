import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { CommanderError, type Command } from 'commander';
import { loadConfig } from '../../src/config';
import type { CliDeps } from '../../src/cli/deps';
import { buildProgram } from '../../src/cli/program';
import { publishWorkflowId } from '../../src/shared/publish-input';
import { capture, runCli } from '../harness/cli-io';
import { repositoryRoot, startWorld, writeIsoFile, type TestWorld } from '../helpers';

const ROOT = path.resolve(__dirname, '..', '..');

/**
 * The README's examples, and the docs', as the test finds them now: every line of a fenced block that
 * runs `vmhub` or `npx vmhub` (continued lines joined, comments cut), each `[optional part]` both left
 * out and given. Nothing here lists the lines: one added to the README is checked as it stands.
 */
function exampleLines(): Array<{ file: string; args: string[] }> {
  const files = [
    'README.md',
    ...fs
      .readdirSync(path.join(ROOT, 'docs'))
      .filter((f) => f.endsWith('.md'))
      .map((f) => `docs/${f}`),
  ];
  const found: Array<{ file: string; args: string[] }> = [];
  for (const file of files) {
    let fenced = false;
    let pending = '';
    for (const raw of fs.readFileSync(path.join(ROOT, file), 'utf8').split('\n')) {
      if (/^\s*```/.test(raw)) {
        fenced = !fenced;
        continue;
      }
      if (!fenced) continue;
      const line = pending + raw.trim().replace(/^\$ /, '');
      pending = line.endsWith('\\') ? `${line.slice(0, -1)} ` : '';
      if (pending) continue;
      const words = shellWords(line);
      const start = words[0] === 'npx' ? 1 : 0;
      if (words[start] !== 'vmhub') continue;
      for (const variant of expandOptional(words.slice(start + 1).join('\u0000'))) {
        found.push({ file, args: variant.split('\u0000').filter((w) => w !== '') });
      }
    }
  }
  return found;
}

/** A line's words as a POSIX shell splits them (quotes, backslashes), up to a comment. */
function shellWords(line: string): string[] {
  const words: string[] = [];
  let word = '';
  let started = false;
  let quote: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (quote) {
      if (ch === quote) quote = undefined;
      else word += ch;
    } else if (ch === "'" || ch === '"') {
      quote = ch;
      started = true;
    } else if (ch === '\\' && i + 1 < line.length) {
      word += line[++i];
      started = true;
    } else if (/\s/.test(ch)) {
      if (started) words.push(word);
      word = '';
      started = false;
    } else if (ch === '#' && !started) {
      break;
    } else {
      word += ch;
      started = true;
    }
  }
  if (started) words.push(word);
  return words;
}

/** `verify [app[@1.4.0]]` → `verify`, `verify app`, `verify app@1.4.0`. */
function expandOptional(text: string): string[] {
  const open = text.indexOf('[');
  let depth = 0;
  for (let i = open; open >= 0 && i < text.length; i++) {
    if (text[i] === '[') depth++;
    else if (text[i] === ']' && --depth === 0) {
      const [before, inner, after] = [text.slice(0, open), text.slice(open + 1, i), text.slice(i + 1)];
      return [...expandOptional(before + after), ...expandOptional(before + inner + after)];
    }
  }
  return [text];
}

/**
 * Parses a command line as the CLI would, with every command's action replaced: the command it reached,
 * or `help` when it asked for help. A line commander refuses throws its usage error.
 */
async function dryParse(args: string[]): Promise<string> {
  const io = capture();
  const unreachable = () => Promise.reject(new Error('a dry parse reaches no service'));
  const deps: CliDeps = { config: loadConfig(), temporal: unreachable, catalog: unreachable, io };
  const program = buildProgram(deps, '0.0.0', () => undefined);
  let reached = '';
  const stub = (c: Command, names: string[]): void => {
    if (c.commands.length > 0) c.commands.forEach((sub) => stub(sub, [...names, sub.name()]));
    else c.action(() => void (reached = names.join(' ')));
  };
  stub(program, []);
  try {
    await program.parseAsync(['node', 'vmhub', ...args]);
  } catch (err) {
    if (err instanceof CommanderError && err.exitCode === 0) return 'help';
    throw new Error(`vmhub ${args.join(' ')}: ${io.stderr.trim() || String(err)}`);
  }
  return reached;
}

const LINES = exampleLines();

/**
 * Commands that only read, which run against the embedded services; the others are only parsed. `status`
 * and `wait` run for a publish's ID (`publish:<image>:<version>`), the run the test can make.
 */
const READ_ONLY = ['images', 'show', 'runs', 'status', 'wait', 'schedules', 'sddc list', 'sddc show', 'retention show'];
const PUBLISH_ID = /^publish:([^:]+):(\d[^:]*)$/;

/** `vmhub --help`, `vmhub help publish`, `vmhub publish --help`, `vmhub -V`: only the program's own -V and --version print its version. */
const asHelp = (args: string[]) =>
  args.length === 0 || ['help', '--version', '-V'].includes(args[0]) || args.some((a) => a === '--help' || a === '-h');

describe('the README’s vmhub examples', () => {
  it('are found: the README shows the CLI', () => {
    expect(LINES.filter((l) => l.file === 'README.md').length).toBeGreaterThanOrEqual(10);
  });

  it.each(LINES.map((l) => [`${l.file}: vmhub ${l.args.join(' ')}`, l.args]))('%s parses', async (_name, args) => {
    const reached = await dryParse(args as string[]);
    expect(reached).not.toBe('');
    if (!asHelp(args as string[])) expect(`${(args as string[]).join(' ')} `.startsWith(`${reached} `)).toBe(true);
  });
});

describe('the README’s read-only vmhub examples, run on the embedded services', () => {
  let world: TestWorld;
  const previousQueue = process.env.VMHUB_TASK_QUEUE;
  const runnable: string[][] = [];
  for (const { args } of LINES) {
    const command = args[0] === 'sddc' || args[0] === 'retention' ? args.slice(0, 2).join(' ') : args[0];
    const followsRun = command === 'status' || command === 'wait';
    if (asHelp(args) || (READ_ONLY.includes(command) && (!followsRun || PUBLISH_ID.test(args[1] ?? '')))) runnable.push(args);
  }

  /**
   * What the lines need to find: the image versions they name, the runs that published them (by the
   * workflow ID they give), the SDDCs they show. An `@latest` of an image named nowhere else gets 1.0.0.
   */
  function needs(): { versions: Array<[string, string]>; sddcs: string[] } {
    const versions = new Map<string, [string, string]>();
    const latest = new Set<string>();
    const sddcs = new Set<string>();
    for (const args of runnable) {
      const ref = /^([a-z0-9][a-z0-9-]*)@(.+)$/.exec(args[1] ?? '');
      const run = PUBLISH_ID.exec(args[1] ?? '');
      const exact = args[0] === 'show' && ref && /^\d/.test(ref[2]) ? ref : (args[0] === 'status' || args[0] === 'wait') && run;
      if (exact) versions.set(`${exact[1]}@${exact[2]}`, [exact[1], exact[2]]);
      else if (args[0] === 'show' && ref) latest.add(ref[1]);
      if (args[0] === 'sddc' && args[1] === 'show' && args[2]) sddcs.add(args[2]);
    }
    for (const image of latest) {
      if (![...versions.values()].some(([i]) => i === image)) versions.set(`${image}@1.0.0`, [image, '1.0.0']);
    }
    return { versions: [...versions.values()], sddcs: [...sddcs] };
  }

  beforeAll(async () => {
    world = await startWorld();
    process.env.VMHUB_TASK_QUEUE = world.config.taskQueue;
    const { versions, sddcs } = needs();
    const source = `readme-${randomUUID().slice(0, 6)}.iso`;
    writeIsoFile(path.join(repositoryRoot(), source), 2 ** 20);
    for (const name of sddcs) {
      await world.deps.catalog.sddcs.add({
        name,
        dataCenter: 'dc-east',
        taskQueue: `sddc-${name}`,
        capacity: { cpus: 32, memoryMiB: 256 * 1024, diskGiB: 2048 },
      });
    }
    for (const [image, version] of versions) {
      await world.client.workflow.execute('PublishImage', {
        args: [{ source, image, version }],
        taskQueue: world.config.taskQueue,
        workflowId: publishWorkflowId(image, version),
      });
    }
  });

  afterAll(async () => {
    await world.close();
    if (previousQueue === undefined) delete process.env.VMHUB_TASK_QUEUE;
    else process.env.VMHUB_TASK_QUEUE = previousQueue;
  });

  it('are there to run', () => {
    expect(runnable.filter((a) => !asHelp(a)).length).toBeGreaterThanOrEqual(5);
  });

  it.each(runnable.map((args) => [`vmhub ${args.join(' ')}`, args]))('%s exits 0 and prints its answer', async (_name, args) => {
    const { code, stdout, stderr } = await runCli(...(args as string[]));
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    expect(stdout.trim()).not.toBe('');
  });
});
