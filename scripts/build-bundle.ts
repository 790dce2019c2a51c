import fs from 'node:fs';
import path from 'node:path';
import { bundleWorkflowCode, type Logger } from '@temporalio/worker';
import { WORKFLOW_INTERCEPTOR_MODULES } from '../src/temporal/interceptors';
import { withoutSourcesText } from '../src/temporal/workflow-source-map';

/**
 * Bundles the workflow code ahead of time into dist/workflow-bundle.js (or the path given as the first
 * argument), so a worker starts without webpack. The worker uses this file while it is newer than every
 * source file; the Docker image names it in VMHUB_WORKFLOW_BUNDLE. `vmhub replay-check --bundle` replays
 * the running workflows against such a file before it is deployed (docs/operations.md). It has the same
 * workflow interceptor modules and source map as a bundle the worker makes.
 */
export const DEFAULT_BUNDLE_PATH = path.resolve(__dirname, '..', 'dist', 'workflow-bundle.js');

export async function buildBundle(
  out: string = DEFAULT_BUNDLE_PATH,
  workflowsPath: string = require.resolve('../src/workflows'),
): Promise<number> {
  const { code } = await bundleWorkflowCode({
    workflowsPath,
    workflowInterceptorModules: WORKFLOW_INTERCEPTOR_MODULES,
    webpackConfigHook: withoutSourcesText,
    logger: bundlerLogger(),
  });
  fs.mkdirSync(path.dirname(out), { recursive: true });
  // Written under another name first, so a worker starting meanwhile never reads half a bundle.
  fs.writeFileSync(`${out}.tmp`, code);
  fs.renameSync(`${out}.tmp`, out);
  return code.length;
}

/** A logger for the workflow bundler: its progress dropped, its warnings and errors on stderr unless `silent`. */
export function bundlerLogger({ silent = false } = {}): Logger {
  const drop = () => undefined;
  const say = silent ? drop : (message: string) => process.stderr.write(`bundler: ${message}\n`);
  return { log: drop, trace: drop, debug: drop, info: drop, warn: say, error: say };
}

if (require.main === module) {
  const out = path.resolve(process.argv[2] ?? DEFAULT_BUNDLE_PATH);
  buildBundle(out).then(
    (bytes) => process.stderr.write(`workflow bundle: ${path.relative(process.cwd(), out)} (${(bytes / 1024).toFixed(0)} KiB)\n`),
    (err: unknown) => {
      process.stderr.write(`vmhub build:bundle: ${(err as Error).message}\n`);
      process.exit(1);
    },
  );
}
