import { printable } from '../client';

/** With --json, stdout carries exactly the result as one JSON document; otherwise the human lines. */
export function print(json: boolean, result: unknown, lines: () => string[]): void {
  if (json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  else for (const line of lines()) process.stdout.write(`${printable(line)}\n`);
}
