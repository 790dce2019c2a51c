import readline from 'node:readline';

/**
 * A line for a terminal: names, products and descriptions come from images, which could carry escape
 * sequences that rewrite the screen; every control character is shown as `?`. (JSON escapes them itself.)
 */
export function printable(line: string): string {
  return line.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
}

/** One line on stderr, filtered as stdout's lines are: an error's message can quote a name from an image. */
export function errLine(io: CliIo, line: string): void {
  io.err(`${printable(line)}\n`);
}

/** Text of several lines for stderr (commander's usage errors): each line filtered, the line breaks kept. */
export function printableText(text: string): string {
  return text.split('\n').map(printable).join('\n');
}

/** Where a command writes: stdout for its result, stderr for progress and messages. */
export interface CliIo {
  out(text: string): void;
  err(text: string): void;
  /** The stream progress bars draw on, and whether it is a terminal. */
  progress: NodeJS.WriteStream;
  tty: boolean;
  /** Asks the operator and returns the answer; absent where nobody can answer (stdin or stdout is not a terminal). */
  readonly ask?: (question: string) => Promise<string>;
}

export const processIo: CliIo = {
  out: (text) => void process.stdout.write(text),
  err: (text) => void process.stderr.write(text),
  progress: process.stderr,
  get tty() {
    return Boolean(process.stderr.isTTY);
  },
  get ask() {
    return process.stdin.isTTY && process.stdout.isTTY ? askOnTerminal : undefined;
  },
};

/** The question goes to stderr, so stdout keeps only the result (one JSON document under --json). */
function askOnTerminal(question: string): Promise<string> {
  const rl = readline.createInterface({ input: process.stdin, output: process.stderr });
  return new Promise<string>((resolve) => {
    rl.question(question, resolve);
    // Ctrl-C or Ctrl-D at the question is a no.
    rl.on('SIGINT', () => resolve(''));
    rl.on('close', () => resolve(''));
  }).finally(() => rl.close());
}

/** With --json, stdout carries exactly the result as one JSON document; otherwise the human lines. */
export function print(io: CliIo | undefined, json: boolean, result: unknown, lines: () => string[]): void {
  const { out } = io ?? processIo;
  if (json) out(`${JSON.stringify(result, null, 2)}\n`);
  else for (const line of lines()) out(`${printable(line)}\n`);
}

/** Columns padded to their widest cell under a header row; the last column is not padded. */
export function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)];
}

/** Temporal's status names (`COMPLETED`, `CANCELLED`) as the CLI prints them everywhere: lowercase. */
export function statusWord(name: string): string {
  return name.toLowerCase().replace(/_/g, '-');
}
