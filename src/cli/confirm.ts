import { CliError } from './errors';
import type { CliIo } from './output';

/**
 * Goes on only when the operator answers `question` with y or yes. Where nobody can answer (no terminal)
 * it refuses with `advice` (NotConfirmed): a script neither waits on a question nor goes ahead unasked.
 */
export async function confirm(io: CliIo, question: string, advice: string): Promise<void> {
  if (!io.ask) throw new CliError('NotConfirmed', advice);
  const answer = await io.ask(`${question} [y/N] `);
  if (!/^\s*y(es)?\s*$/i.test(answer)) throw new CliError('NotConfirmed', 'not confirmed; nothing was changed');
}
