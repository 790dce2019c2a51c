import fs from 'node:fs';
import path from 'node:path';
import { parseSourceHosts } from './source/policy';
import { transferTaskQueueOf } from './shared/task-queues';

/** Everything vmhub reads from its environment, in one place, with its defaults (the README lists them). */
export interface Config {
  temporal: TemporalConfig;
  taskQueue: string;
  /** Where long transfers run: `<taskQueue>-transfer` (vm-images-transfer), derived so workflows know it too. */
  transferTaskQueue: string;
  mongodbUri: string;
  topologyPath: string;
  repositoryRoots: string[];
  dataDir: string;
  /** VMHUB_DATASTORE: where an SDDC agent writes images; unset, each agent uses `<dataDir>/sddc/<sddc>`. */
  datastore?: string;
  /** Preferred block size; the block plan raises it when a blob would need more than 50,000 blocks. */
  blockSizeBytes: number;
  /** Uploads or ranged reads in flight inside one activity. */
  transferConcurrency: number;
  /** Range activities running at once inside one workflow. */
  rangeFanOut: number;
  /** VMHUB_MAX_INFLIGHT_MIB: block bytes one worker holds at most (reads, uploads, blocks waiting to be hashed). */
  maxInflightBytes: number;
  /** VMHUB_SOURCE_HOSTS: the http(s) hosts images may come from; empty means public addresses over https only. */
  sourceHosts: string[];
  /** VMHUB_VERIFY_BYTES_PER_DAY: replica bytes VerifyReplicas' scheduled runs read and hash in a day (1 TiB). */
  verifyBytesPerDay: number;
  /** What this process demands of OVF certificates and manifests (README: OVF certificates). */
  ovf: OvfTrustConfig;
  /** VMHUB_SIGNING_KEY_FILE: the publisher's private key (PEM); unset, the dev key `npm run services` made, if any. */
  signingKeyFile?: string;
  /** VMHUB_TRUSTED_KEYS: public keys an agent or the CLI trusts (files or directories); unset, the dev key's, if any. */
  trustedKeys?: string;
  /** VMHUB_OPERATOR_CHECKS_FILE: the operator checks a health gate may name (src/deploy/operator-check.ts); unset, none. */
  operatorChecksFile?: string;
}

export interface OvfTrustConfig {
  /** VMHUB_OVF_TRUSTED_CA_FILE: PEM certificates of the CAs an OVF certificate must lead to to be `verified`. */
  trustedCaFile?: string;
  /** VMHUB_REQUIRE_MANIFEST: an agent imports no OVF image whose manifest does not list every member. */
  requireManifest: boolean;
  /** VMHUB_REQUIRE_OVF_CERT: an agent imports no OVF image whose certificate it does not verify itself. */
  requireVerifiedCertificate: boolean;
}

export interface TemporalConfig {
  address: string;
  namespace: string;
  apiKey?: string;
  tls?: { serverName?: string; clientCertPath?: string; clientKeyPath?: string; serverRootCaCertPath?: string };
}

export const PROJECT_ROOT = path.resolve(__dirname, '..');
const MiB = 1024 * 1024;

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const dataDir = path.resolve(PROJECT_ROOT, env.VMHUB_DATA_DIR ?? '.data');
  const roots = (env.VMHUB_REPOSITORY_ROOTS ?? path.join(dataDir, 'repository'))
    .split(':')
    .filter((r) => r.length > 0)
    .map((r) => path.resolve(PROJECT_ROOT, r));
  const taskQueue = env.VMHUB_TASK_QUEUE ?? 'vm-images';
  return {
    temporal: loadTemporalConfig(env),
    taskQueue,
    transferTaskQueue: transferTaskQueueOf(taskQueue),
    mongodbUri: env.MONGODB_URI ?? uriFromFile(env.MONGODB_URI_FILE) ?? 'mongodb://127.0.0.1:27017/vmhub',
    topologyPath: path.resolve(PROJECT_ROOT, env.VMHUB_TOPOLOGY ?? 'config/topology.json'),
    repositoryRoots: roots,
    dataDir,
    datastore: env.VMHUB_DATASTORE ? path.resolve(PROJECT_ROOT, env.VMHUB_DATASTORE) : undefined,
    blockSizeBytes: positiveInt(env.VMHUB_BLOCK_SIZE_MIB, 8, 'VMHUB_BLOCK_SIZE_MIB') * MiB,
    transferConcurrency: positiveInt(env.VMHUB_TRANSFER_CONCURRENCY, 8, 'VMHUB_TRANSFER_CONCURRENCY'),
    rangeFanOut: positiveInt(env.VMHUB_RANGE_FAN_OUT, 4, 'VMHUB_RANGE_FAN_OUT'),
    maxInflightBytes: positiveInt(env.VMHUB_MAX_INFLIGHT_MIB, 256, 'VMHUB_MAX_INFLIGHT_MIB') * MiB,
    sourceHosts: parseSourceHosts(env.VMHUB_SOURCE_HOSTS ?? ''),
    verifyBytesPerDay: positiveInt(env.VMHUB_VERIFY_BYTES_PER_DAY, 2 ** 40, 'VMHUB_VERIFY_BYTES_PER_DAY'),
    ovf: {
      trustedCaFile: env.VMHUB_OVF_TRUSTED_CA_FILE ? path.resolve(PROJECT_ROOT, env.VMHUB_OVF_TRUSTED_CA_FILE) : undefined,
      requireManifest: flag(env.VMHUB_REQUIRE_MANIFEST, 'VMHUB_REQUIRE_MANIFEST'),
      requireVerifiedCertificate: flag(env.VMHUB_REQUIRE_OVF_CERT, 'VMHUB_REQUIRE_OVF_CERT'),
    },
    signingKeyFile: env.VMHUB_SIGNING_KEY_FILE || existing(devKeyPaths(dataDir).signingKey),
    trustedKeys: env.VMHUB_TRUSTED_KEYS || existing(devKeyPaths(dataDir).trusted),
    operatorChecksFile: env.VMHUB_OPERATOR_CHECKS_FILE ? path.resolve(PROJECT_ROOT, env.VMHUB_OPERATOR_CHECKS_FILE) : undefined,
  };
}

/** MONGODB_URI_FILE: the catalog URI, password included, from a file (a Docker secret) rather than the environment. */
function uriFromFile(file: string | undefined): string | undefined {
  return file ? fs.readFileSync(file, 'utf8').trim() : undefined;
}

/**
 * The dev key pair `npm run services start` and the demo make once under the data directory. Only the
 * embedded services' own data directory holds one, so a production worker never finds it by default.
 */
export function devKeyPaths(dataDir: string): { signingKey: string; trusted: string } {
  return { signingKey: path.join(dataDir, 'keys', 'signing.pem'), trusted: path.join(dataDir, 'keys', 'trusted') };
}

function existing(file: string): string | undefined {
  return fs.existsSync(file) ? file : undefined;
}

function loadTemporalConfig(env: NodeJS.ProcessEnv): TemporalConfig {
  const tlsWanted =
    env.TEMPORAL_TLS === 'true' || env.TEMPORAL_TLS_CLIENT_CERT_PATH !== undefined || env.TEMPORAL_API_KEY !== undefined;
  return {
    address: env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233',
    namespace: env.TEMPORAL_NAMESPACE ?? 'default',
    apiKey: env.TEMPORAL_API_KEY,
    tls: tlsWanted
      ? {
          serverName: env.TEMPORAL_TLS_SERVER_NAME,
          clientCertPath: env.TEMPORAL_TLS_CLIENT_CERT_PATH,
          clientKeyPath: env.TEMPORAL_TLS_CLIENT_KEY_PATH,
          serverRootCaCertPath: env.TEMPORAL_TLS_SERVER_CA_CERT_PATH,
        }
      : undefined,
  };
}

function positiveInt(value: string | undefined, fallback: number, name: string): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} must be a positive whole number, got "${value}"`);
  return n;
}

function flag(value: string | undefined, name: string): boolean {
  if (value === undefined || value === '' || value === '0' || value === 'false') return false;
  if (value === '1' || value === 'true') return true;
  throw new Error(`${name} must be 1 or 0, got "${value}"`);
}
