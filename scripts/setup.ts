import { execFileSync } from 'node:child_process';
import { catalogServer, onPath, temporalBinary, testServerBinary, vcsimBinary } from '../src/dev-services/tools';

/**
 * Installs what the embedded services need (Temporal CLI, catalog server, vCenter simulator), and with --test the Debian
 * packages the tests use: docker-compose (checks docker-compose.yml offline), xorriso (builds test ISOs)
 * and chromium (Web UI test), and the SDK's time-skipping test server. Everything is skipped when already present.
 */
const TEST_PACKAGES: Array<{ binary: string; pkg: string }> = [
  { binary: 'docker-compose', pkg: 'docker-compose' },
  { binary: 'xorriso', pkg: 'xorriso' },
  { binary: 'chromium', pkg: 'chromium' },
];

function aptInstall(packages: string[]): void {
  const asRoot = process.getuid?.() === 0;
  const sudo = asRoot ? [] : onPath('sudo') ? ['sudo'] : undefined;
  if (!sudo || !onPath('apt-get')) {
    throw new Error(
      `missing ${packages.join(', ')}: install them with your package manager (Debian: apt-get install ${packages.join(' ')})`,
    );
  }
  const run = (args: string[]) =>
    execFileSync(sudo.length ? 'sudo' : args[0], sudo.length ? args : args.slice(1), {
      stdio: ['ignore', 'ignore', 'inherit'],
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
  process.stderr.write(`vmhub: installing Debian packages ${packages.join(' ')}\n`);
  run(['apt-get', 'update', '-qq']);
  run(['apt-get', 'install', '-y', '-qq', '--no-install-recommends', ...packages]);
}

function main(): void {
  const started = Date.now();
  const temporal = temporalBinary();
  const catalog = catalogServer();
  const vcsim = vcsimBinary();
  const lines = [`temporal: ${temporal}`, `catalog:  ${catalog.kind} ${catalog.binary}`, `vcsim:    ${vcsim}`];
  if (process.argv.includes('--test')) {
    const missing = TEST_PACKAGES.filter((p) => !onPath(p.binary)).map((p) => p.pkg);
    if (missing.length > 0) aptInstall(missing);
    lines.push(`test server: ${testServerBinary()}`);
    lines.push(`test tools: ${TEST_PACKAGES.map((p) => onPath(p.binary) ?? `${p.binary} (missing)`).join(', ')}`);
  }
  process.stderr.write(`${lines.join('\n')}\nsetup took ${((Date.now() - started) / 1000).toFixed(1)}s\n`);
}

try {
  main();
} catch (err) {
  process.stderr.write(`vmhub setup: ${(err as Error).message}\n`);
  process.exit(1);
}
