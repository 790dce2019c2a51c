import fs from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { CLI_ERROR_TYPES } from '../../src/cli/errors';
import { ERROR_TYPES } from '../../src/shared/errors';
import { parsedSources, ROOT } from './sources';

/**
 * docs/architecture.md lists every error type an operator can meet, and only those: the types of
 * VmhubError (ERROR_TYPES), the CLI's own (CLI_ERROR_TYPES), and every type the sources raise as an
 * ApplicationFailure, a VmhubError or a CliError, found in the code itself.
 */
/** The literal type of each failure raised in a file: `new VmhubError('T', …)`, `ApplicationFailure.nonRetryable(m, 'T')`, … */
function raisedTypes(source: ts.SourceFile): string[] {
  const found: string[] = [];
  const literal = (node: ts.Node | undefined): void => {
    if (node && ts.isStringLiteralLike(node)) found.push(node.text);
  };
  const visit = (node: ts.Node): void => {
    if (ts.isNewExpression(node) && /^(VmhubError|CliError)$/.test(node.expression.getText())) literal(node.arguments?.[0]);
    if (ts.isCallExpression(node)) {
      const callee = node.expression.getText();
      if (/^ApplicationFailure\.(nonRetryable|retryable)$/.test(callee)) literal(node.arguments[1]);
      if (callee === 'ApplicationFailure.create') {
        const options = node.arguments[0];
        if (options && ts.isObjectLiteralExpression(options)) {
          for (const p of options.properties) {
            if (ts.isPropertyAssignment(p) && p.name.getText() === 'type') literal(p.initializer);
          }
        }
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

/** The types the Errors section's tables name in their first column. */
function documentedTypes(): string[] {
  const doc = fs.readFileSync(path.join(ROOT, 'docs', 'architecture.md'), 'utf8');
  const section = doc.slice(doc.indexOf('\n## Errors\n'));
  const end = section.indexOf('\n## ', 1);
  return (end > 0 ? section.slice(0, end) : section)
    .split('\n')
    .filter((l) => l.startsWith('| `'))
    .flatMap((l) => [...l.split('|')[1].matchAll(/`([A-Za-z]+)`/g)].map((m) => m[1]));
}

describe('the documented error types', () => {
  const raised = parsedSources('src').flatMap(raisedTypes);
  const inCode = new Set([...ERROR_TYPES, ...CLI_ERROR_TYPES, ...raised]);
  const documented = documentedTypes();

  it('the scans find what they look for', () => {
    expect(raised).toEqual(expect.arrayContaining(['InvalidInput', 'NoSource', 'DownloadInProgress', 'ServiceUnavailable']));
    expect(documented).toEqual(expect.arrayContaining(['InvalidSource', 'UnknownSddc', 'UnknownImage']));
  });

  it('lists every type the code can raise', () => {
    expect([...inCode].filter((t) => !documented.includes(t)).sort()).toEqual([]);
  });

  it('lists only types the code raises, each once', () => {
    expect(documented.filter((t) => !inCode.has(t))).toEqual([]);
    expect(documented.filter((t, i) => documented.indexOf(t) !== i)).toEqual([]);
  });

  it('every declared type is raised somewhere, so none is listed for nothing', () => {
    const declared = [...ERROR_TYPES, ...CLI_ERROR_TYPES];
    // The types the CLI gives errors it did not raise itself, and where.
    const indirect: Record<string, string> = {
      // the CLI's catch-all gives commander's own errors and an unknown workflow ID these types
      UsageError: 'src/cli/errors.ts',
      UnknownWorkflow: 'src/cli/errors.ts',
    };
    const notRaised = declared.filter((t) => !raised.includes(t) && !(t in indirect));
    expect(notRaised).toEqual([]);
    for (const [type, file] of Object.entries(indirect)) {
      expect(fs.readFileSync(path.join(ROOT, file), 'utf8')).toContain(`'${type}'`);
    }
  });
});
