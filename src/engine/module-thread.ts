import path from 'node:path';
import { Worker } from 'node:worker_threads';

/**
 * A worker thread running the module `name` beside `dir` (a caller's `__dirname`): its compiled `.js`, or
 * under tsx or ts-jest its TypeScript source, which the thread then loads through tsx.
 */
export function moduleThread(dir: string, name: string): Worker {
  const file = path.join(dir, `${name}${path.extname(__filename)}`);
  const tsx = file.endsWith('.ts') ? require.resolve('tsx/cjs/api') : undefined;
  return new Worker(
    `const { workerData } = require('node:worker_threads');
     if (workerData.tsx) require(workerData.tsx).register();
     require(workerData.file);`,
    { eval: true, workerData: { file, tsx }, execArgv: [] },
  );
}
