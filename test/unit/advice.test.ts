import fs from 'node:fs';
import path from 'node:path';
import type { Command, Option } from 'commander';
import ts from 'typescript';
import { buildProgram } from '../../src/cli/program';
import type { CliDeps } from '../../src/cli/deps';
import { parseWorkerArgs } from '../../src/temporal/worker';
import { parsedSources, ROOT } from './sources';

/**
 * Every command an error message (or any other text in src/) tells the operator to run, quoted as
 * `vmhub …` or `npm run …`, is one the tool accepts: the command exists, each option it names is one of
 * that command's, the required arguments and options are there, and an npm script exists and takes
 * the arguments given. Placeholders (`<name>`, a template's `${…}`) stand for values; `...` for arguments left out.
 */
interface Advice {
  where: string;
  text: string;
}

/** The texts of a file's string literals, each expression of a template standing as `x1`, with their lines. */
function literals(source: ts.SourceFile): Array<{ line: number; text: string }> {
  const found: Array<{ line: number; text: string }> = [];
  const visit = (node: ts.Node): void => {
    let text: string | undefined;
    if (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) text = node.text;
    else if (ts.isTemplateExpression(node)) text = node.head.text + node.templateSpans.map((s) => `x1${s.literal.text}`).join('');
    if (text !== undefined) found.push({ line: source.getLineAndCharacterOfPosition(node.getStart()).line + 1, text });
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

/** Each quoted `vmhub …` or `npm run …` in the sources' strings (comments are not advice), with its file and line. */
function quotedCommands(): Advice[] {
  return parsedSources('src').flatMap((source) =>
    literals(source).flatMap(({ line, text }) =>
      [...text.matchAll(/`((?:vmhub|npm run) [^`]*)`/g)].map((m) => ({
        where: `${path.relative(ROOT, source.fileName)}:${line}`,
        text: m[1],
      })),
    ),
  );
}

/** The words of a quoted command, each placeholder made a plain value. */
function words(text: string): string[] {
  return text
    .replace(/<[^>]*>/g, 'x1')
    .split(/\s+/)
    .filter(Boolean);
}

function optionOf(command: Command, flag: string): Option | undefined {
  return command.options.find((o) => o.long === flag || o.short === flag);
}

/** Why commander would refuse the words after `vmhub`, or undefined when it accepts them. */
function vmhubRefusal(program: Command, args: string[]): string | undefined {
  let command = program;
  let rest = args;
  while (rest.length > 0 && command.commands.length > 0) {
    const sub = command.commands.find((c) => c.name() === rest[0] || c.aliases().includes(rest[0]));
    if (!sub) return `no command ${rest[0]} under ${command.name()}`;
    command = sub;
    rest = rest.slice(1);
  }
  if (command.commands.length > 0) return `${command.name()} needs a subcommand`;
  const positional: string[] = [];
  const given = new Set<Option>();
  for (let i = 0; i < rest.length; i++) {
    if (!rest[i].startsWith('-')) {
      positional.push(rest[i]);
      continue;
    }
    const option = optionOf(command, rest[i]);
    if (!option) return `${command.name()} has no option ${rest[i]}`;
    given.add(option);
    if (option.required || option.optional) i++;
  }
  // `...` stands for the arguments and options the text leaves to the reader.
  if (positional.includes('...')) return undefined;
  const expected = command.registeredArguments;
  const needed = expected.filter((a) => a.required).length;
  if (positional.length < needed) return `${command.name()} needs ${needed} argument(s), given ${positional.length}`;
  if (positional.length > expected.length && !expected.some((a) => a.variadic))
    return `${command.name()} takes ${expected.length} argument(s)`;
  const missing = command.options.filter((o) => o.mandatory && !given.has(o) && o.defaultValue === undefined);
  if (missing.length > 0) return `${command.name()} needs ${missing.map((o) => o.long).join(', ')}`;
  return undefined;
}

/** Why npm would not run the script with those arguments as the text gives them, or undefined. */
function npmRefusal(args: string[], scripts: Record<string, string>): string | undefined {
  const [script, dashes, ...rest] = args;
  if (!(script in scripts)) return `package.json has no script ${script}`;
  if (dashes !== undefined && dashes !== '--') return `arguments to an npm script follow "--", not ${dashes}`;
  // The worker scripts name their role themselves; the rest goes to the worker's own parser.
  const role = /worker\.ts (\w+)$/.exec(scripts[script])?.[1];
  if (role) {
    try {
      parseWorkerArgs([role, ...rest]);
    } catch (err) {
      return (err as Error).message;
    }
  }
  return undefined;
}

describe('advice in messages is advice the tool accepts', () => {
  const program = buildProgram({} as CliDeps, '0.0.0', () => undefined);
  const scripts = (JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> })
    .scripts;
  const advice = quotedCommands();

  it('finds the quoted commands (the scan itself works)', () => {
    expect(advice.length).toBeGreaterThan(20);
    expect(advice.map((a) => a.text)).toEqual(
      expect.arrayContaining(['vmhub sddc add <name> --dc <data-center>', 'npm run agent -- x1']),
    );
  });

  it('each quoted command is accepted as written', () => {
    const refused = advice.flatMap((a) => {
      const [tool, ...rest] = words(a.text);
      const why = tool === 'vmhub' ? vmhubRefusal(program, rest) : npmRefusal(rest.slice(1), scripts);
      return why ? [`${a.where}: \`${a.text}\`: ${why}`] : [];
    });
    expect(refused).toEqual([]);
  });

  it('the checker refuses what the tool refuses', () => {
    expect(vmhubRefusal(program, words('sddc add'))).toMatch(/needs 1 argument/);
    expect(vmhubRefusal(program, words('sddc add east-3'))).toMatch(/needs --dc/);
    expect(vmhubRefusal(program, words('sddc update east-3 --pool x'))).toMatch(/no option --pool/);
    expect(vmhubRefusal(program, words('sddc frobnicate'))).toMatch(/no command frobnicate/);
    expect(vmhubRefusal(program, words('deploy app@1.0.0 --to all --force'))).toBeUndefined();
    expect(npmRefusal(['nosuch'], scripts)).toMatch(/no script nosuch/);
    expect(npmRefusal(['agent'], scripts)).toMatch(/name the SDDC/);
    expect(npmRefusal(words('worker -- --only both'), scripts)).toMatch(/--only takes/);
  });
});
