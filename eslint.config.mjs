// ESLint catches what the type checker does not: promises nobody awaits, and imports that break the
// layering (docs/architecture.md). Formatting is prettier's job (`npm run lint` runs both), so no style rules here.
import { builtinModules } from 'node:module';
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

const nodeBuiltins = builtinModules.filter((name) => !name.startsWith('_'));
const DETERMINISTIC = 'Workflow code and what it imports (src/shared/) are deterministic: do I/O in an activity.';
// Drivers and the SDK's Node-side packages: the workflow sandbox has no I/O, and a value import would
// only fail at worker start, when the bundle is built. Type-only imports are erased and allowed.
const drivers = ['mongodb', '@azure/storage-blob', 'xml2js', 'tar-stream', 'commander', 'cli-progress'];
const nodeSidePackages = ['@temporalio/worker', '@temporalio/client', '@temporalio/activity', '@temporalio/testing'];
const CLI_ONLY = { regex: '(^|/)cli(/|$)', message: 'Only the CLI and scripts import src/cli/: it is the top layer.' };

export default defineConfig(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', 'test-output/**', '.data/**'] },
  {
    files: ['src/**/*.ts', 'test/**/*.ts', 'scripts/**/*.ts'],
    languageOptions: {
      parser: tseslint.parser,
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { '@typescript-eslint': tseslint.plugin },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
    },
  },
  {
    // One adapter per driver: storage behind the block store port, the catalog behind its repositories.
    files: ['src/**/*.ts'],
    ignores: ['src/storage/azure/**', 'src/catalog/**', 'src/cli/**'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: [
            { name: '@azure/storage-blob', message: 'Azure is reached through the block store port (src/storage/block-store.ts).' },
            { name: 'mongodb', message: 'The catalog is reached through its repositories (src/catalog/).' },
          ],
          patterns: [CLI_ONLY],
        },
      ],
    },
  },
  {
    files: ['src/catalog/**/*.ts', 'src/storage/azure/**/*.ts'],
    rules: { '@typescript-eslint/no-restricted-imports': ['error', { patterns: [CLI_ONLY] }] },
  },
  {
    files: ['src/workflows/**/*.ts', 'src/shared/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: [
            ...nodeBuiltins.map((name) => ({ name, message: DETERMINISTIC })),
            ...[...drivers, ...nodeSidePackages].map((name) => ({ name, message: DETERMINISTIC, allowTypeImports: true })),
          ],
          patterns: [{ group: ['node:*'], message: DETERMINISTIC }, CLI_ONLY],
        },
      ],
    },
  },
);
