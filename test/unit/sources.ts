import fs from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

/** The checkout, for tests that read its sources and docs. */
export const ROOT = path.resolve(__dirname, '..', '..');

/** Every TypeScript file under `dir` of the checkout (e.g. `src`), each parsed. */
export function parsedSources(dir: string): ts.SourceFile[] {
  const files = (d: string): string[] =>
    fs.readdirSync(d, { withFileTypes: true }).flatMap((e) => {
      const file = path.join(d, e.name);
      return e.isDirectory() ? files(file) : file.endsWith('.ts') ? [file] : [];
    });
  return files(path.join(ROOT, dir)).map((f) => ts.createSourceFile(f, fs.readFileSync(f, 'utf8'), ts.ScriptTarget.Latest, true));
}
