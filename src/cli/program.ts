import { Command, CommanderError, Option } from 'commander';
import { loadConfig, type Config } from '../config';
import * as cancel from './cancel';
import * as channel from './channel';
import type { CliCommand } from './command';
import * as deploy from './deploy';
import * as deprecate from './deprecate';
import type { CliDeps } from './deps';
import * as diff from './diff';
import { errorOf } from './errors';
import * as images from './images';
import { errLine, printableText, processIo, type CliIo } from './output';
import * as publish from './publish';
import * as replayCheck from './replay-check';
import * as retention from './retention';
import * as retire from './retire';
import * as rollout from './rollout';
import * as rolloutSteer from './rollout-steer';
import * as runs from './runs';
import * as schedules from './schedules';
import * as sddcAdd from './sddc-add';
import * as sddcList from './sddc-list';
import * as sddcRemove from './sddc-remove';
import * as sddcShow from './sddc-show';
import * as sddcUpdate from './sddc-update';
import { cliDeps } from './services';
import * as show from './show';
import * as status from './status';
import * as verify from './verify';
import * as wait from './wait';

/** Every command, in the order the help lists them. */
export const COMMANDS: CliCommand[] = [
  publish,
  deploy,
  rollout,
  rolloutSteer,
  channel,
  wait,
  status,
  runs,
  cancel,
  images,
  show,
  diff,
  sddcAdd,
  sddcUpdate,
  sddcShow,
  sddcList,
  sddcRemove,
  deprecate,
  retire,
  retention,
  verify,
  schedules,
  replayCheck,
];

const ENVIRONMENT = `
Environment:
  TEMPORAL_ADDRESS         Temporal frontend, host:port (default 127.0.0.1:7233; --address overrides)
  TEMPORAL_NAMESPACE       Temporal namespace (default "default"; --namespace overrides)
  TEMPORAL_API_KEY, TEMPORAL_TLS, TEMPORAL_TLS_*   Temporal Cloud / mTLS settings
  MONGODB_URI              the catalog (default mongodb://127.0.0.1:27017/vmhub)
  MONGODB_URI_FILE         a file holding the catalog URI, when MONGODB_URI is unset
  VMHUB_TASK_QUEUE         the control workers' task queue (default vm-images)
  VMHUB_REPOSITORY_ROOTS   folders images are published from, separated by ":" (default .data/repository)
  VMHUB_TOPOLOGY           the data centers and storage (default config/topology.json)

Exit codes:
  0  done
  1  an error (one line on stderr; with --json, {"error":{"type","message"}} on stdout)
  2  a deploy (or publish --deploy, or wait) in which some SDDC ended neither deployed nor already present;
     a cancel that did not cancel; a verify that could not repair a replica; a retention apply in which
     some retire failed; a replay-check that found a run the new workflow code cannot replay
  130  Ctrl-C while following a run (the run goes on: re-attach with vmhub wait <workflow-id>)
`;

const EXAMPLES = `
Examples:
  npm run services -- start                    # the local Temporal, MongoDB, Azurite and vCenter simulators
  vmhub sddc add east-3 --dc dc-east --cpus 32 --memory 256GiB --disk 2TiB
  vmhub publish ubuntu-app.ova --image ubuntu-app --version 2.3.1 --deploy east-1,west-1
  vmhub deploy ubuntu-app@latest --to all
  vmhub runs --image ubuntu-app
  vmhub wait deploy:ubuntu-app:2.3.1:20250101T120000000Z-1a2b3c
`;

/** The program's flags that override the configuration: the Temporal CLI's --address and --namespace. */
export interface GlobalOptions {
  address?: string;
  namespace?: string;
}

export function withOverrides(config: Config, o: GlobalOptions): Config {
  return {
    ...config,
    temporal: {
      ...config.temporal,
      address: o.address ?? config.temporal.address,
      namespace: o.namespace ?? config.temporal.namespace,
    },
  };
}

/**
 * The program. Its own options come before the command (so `publish --version 1.2.3` is the publish's
 * version, not vmhub's); --address and --namespace are taken on every command, as the Temporal CLI does.
 */
export function buildProgram(deps: CliDeps, version: string, onOptions: (o: GlobalOptions) => void): Command {
  const program = new Command('vmhub')
    .description('Publish VM images to Azure Blob Storage, catalog them, replicate them and deploy them to SDDCs.')
    .version(version, '-V, --version', 'print the version of vmhub')
    .enablePositionalOptions()
    .addHelpText('after', EXAMPLES + ENVIRONMENT);
  for (const command of COMMANDS) command.register(program, deps);
  const io = deps.io ?? processIo;
  const finish = (c: Command): void => {
    c.exitOverride();
    // A usage error is one line, with commander's "did you mean" and where the help is, never the whole help.
    c.showHelpAfterError(false).configureOutput({
      writeOut: io.out,
      writeErr: (text) => io.err(printableText(text)),
      outputError: (message, write) => write(usageLine(message, c)),
    });
    if (c.commands.length > 0) c.commands.forEach(finish);
    else if (c !== program) {
      c.addOption(new Option('--address <host:port>', 'Temporal frontend address (overrides TEMPORAL_ADDRESS)'));
      c.addOption(new Option('--namespace <name>', 'Temporal namespace (overrides TEMPORAL_NAMESPACE)'));
    }
  };
  finish(program);
  program.hook('preAction', (_program, action) => onOptions(action.opts() as GlobalOptions));
  return program;
}

/** `error: unknown option '--imag'\n(Did you mean --image?)` → `vmhub: UsageError: unknown option '--imag' (Did you mean --image?); see `vmhub publish --help``. */
export function usageLine(message: string, command: Command): string {
  const names: string[] = [];
  for (let c: Command | null = command; c; c = c.parent) names.unshift(c.name());
  const text = message
    .trim()
    .replace(/^error: /, '')
    .replace(/\s*\n\s*/g, ' ')
    .replace(/\.$/, '');
  return `vmhub: UsageError: ${text}; see \`${names.join(' ')} --help\`\n`;
}

function packageVersion(): string {
  return (require('../../package.json') as { version: string }).version;
}

function endOnClosedPipe(err: NodeJS.ErrnoException): void {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw err;
}

/**
 * Runs the CLI. A failure is one line on stderr (`vmhub: Type: message`), or under --json one JSON
 * document on stdout; the exit code is 1 (130 for Ctrl-C while following). A reader that closes the pipe early (`| head`) ends the run quietly.
 */
export async function main(argv: string[], io: CliIo = processIo): Promise<void> {
  // Once per process, however often main runs in it (the tests run it many times).
  if (!process.stdout.listeners('error').includes(endOnClosedPipe)) process.stdout.on('error', endOnClosedPipe);
  const json = argv.includes('--json');
  let overrides: GlobalOptions = {};
  const deps = cliDeps(() => withOverrides(loadConfig(), overrides), io);
  try {
    await buildProgram(deps, packageVersion(), (o) => (overrides = o)).parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError && err.exitCode === 0) return;
    const { type, message } = errorOf(err);
    if (json) io.out(`${JSON.stringify({ error: { type, message } }, null, 2)}\n`);
    // commander has printed its own usage error on stderr already.
    else if (!(err instanceof CommanderError)) errLine(io, `vmhub: ${type}: ${message}`);
    process.exitCode = type === 'Interrupted' ? 130 : 1;
  } finally {
    await deps.close();
  }
  // An interrupted follow leaves the workflow's result pending: nothing more to wait for.
  if (process.exitCode === 130) process.exit(130);
}
