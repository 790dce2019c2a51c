import { Option, type Command } from 'commander';
import type { CliDeps } from './deps';

/** A command module: it registers its options once, on the program or on a command group. */
export interface CliCommand {
  register(parent: Command, deps: CliDeps): void;
}

export function jsonOption(): Option {
  return new Option('--json', 'print one JSON document on stdout; an error is {"error":{"type","message"}}');
}

/** An option the command cannot do without, marked so in the help. */
export function requiredOption(flags: string, description: string): Option {
  return new Option(flags, `${description} (required)`).makeOptionMandatory();
}

export function examples(...lines: string[]): string {
  return `\nExamples:\n${lines.map((l) => `  ${l}`).join('\n')}`;
}
