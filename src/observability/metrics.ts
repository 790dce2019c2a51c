import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { DeployStatus } from '../shared/deploy-input';
import { settleWithin } from '../engine/settle-within';
import { PROVENANCE_FAILURES, type ErrorType } from '../shared/errors';

/**
 * vmhub's own Prometheus metrics, in one registry per process. Domain code records what it moves where it
 * moves it (`metrics.stagedBytes.inc({ image, location }, bytes)`), once per block or chunk, never per
 * byte: with metrics off (no VMHUB_METRICS_ADDRESS) a record costs one counter update and nothing reads
 * it. Labels are bounded: images, storage locations, SDDCs, kinds and outcomes; never a run ID, a version
 * or a URL. Counters count work done: a retried attempt counts again what it moves again.
 * The endpoint that serves them is ./metrics-server.ts; the metrics are listed in docs/architecture.md.
 */
export const registry = new Registry();

/**
 * A counter; with `initial`, the series of a label's known values exist at 0 from the start, so that
 * `increase()` sees the first one counted: a series that first appears at 1 has no increase, and an alert
 * on it would miss the first failure after a process starts.
 */
function counter<L extends string>(
  name: string,
  help: string,
  labelNames: readonly L[],
  initial?: { label: L; values: readonly string[] },
): Counter<L> {
  const c = new Counter({ name, help, labelNames, registers: [registry] });
  for (const value of initial?.values ?? []) c.inc({ [initial!.label]: value } as Partial<Record<L, string>>, 0);
  return c;
}

function gauge(name: string, help: string): Gauge {
  return new Gauge({ name, help, registers: [registry] });
}

const RETRIES_COUNT = 'A retried attempt counts again what it moves again.';

/** What content failed its check: an OVA's manifest, a whole-image SHA-256, a signature or signed statement, an OVF certificate, a block's digest. */
const VERIFICATION_KINDS = ['manifest', 'sha256', 'signature', 'certificate', 'block'] as const;
export type VerificationKind = (typeof VERIFICATION_KINDS)[number];

export const metrics = {
  stagedBytes: counter(
    'vmhub_staged_bytes_total',
    `Bytes a publish staged as blocks into its primary storage location, counted per block uploaded. ${RETRIES_COUNT}`,
    ['image', 'location'],
  ),
  inspectedBytes: counter(
    'vmhub_inspected_bytes_total',
    `Bytes a publish's inspection pass took in (whole-image SHA-256, OVA walk and manifest, OVF descriptor, ISO descriptors), per block. ${RETRIES_COUNT}`,
    ['image'],
  ),
  committedBytes: counter(
    'vmhub_committed_bytes_total',
    'Bytes of blobs whose block list a publish committed, counted once per commit made.',
    ['image', 'location'],
  ),
  replicatedBytes: counter(
    'vmhub_replicated_bytes_total',
    `Bytes replication staged into a replica location (the destination), per block. ${RETRIES_COUNT}`,
    ['image', 'location'],
  ),
  crossedBytes: counter(
    'vmhub_crossed_bytes_total',
    `Bytes replication read from the primary for a replica location (the destination), crossing data centers, per block. ${RETRIES_COUNT}`,
    ['image', 'location'],
  ),
  downloadedBytes: counter(
    'vmhub_downloaded_bytes_total',
    `Bytes an agent fetched from storage into an SDDC's datastore for a deploy, counted per range written. ${RETRIES_COUNT}`,
    ['image', 'sddc'],
  ),
  verificationFailures: counter(
    'vmhub_verification_failures_total',
    'Content that failed verification, by kind: manifest, sha256, signature, certificate, block.',
    ['kind'],
    { label: 'kind', values: VERIFICATION_KINDS },
  ),
  deployments: counter(
    'vmhub_deployments_total',
    'Deploy rows recorded in the catalog, by outcome (the row status).',
    ['outcome'],
    { label: 'outcome', values: ['deployed', 'already-present', 'skipped', 'failed'] satisfies DeployStatus[] },
  ),
  rolloutWaves: counter('vmhub_rollout_waves_total', 'Rollout waves ended, by outcome (passed, halted, aborted).', ['outcome'], {
    label: 'outcome',
    values: ['passed', 'halted', 'aborted'],
  }),
  rolloutGates: counter(
    'vmhub_rollout_gates_total',
    'Per-SDDC health gates of rollout waves ended, by outcome (passed, failed).',
    ['outcome'],
    { label: 'outcome', values: ['passed', 'failed'] },
  ),
  sourcePolicyRefusals: counter(
    'vmhub_source_policy_refusals_total',
    'Image sources refused by the source policy (VMHUB_SOURCE_HOSTS and the public-address rules), by reason.',
    ['reason'],
  ),
  byteBudgetUsed: gauge(
    'vmhub_byte_budget_used_bytes',
    'Bytes of block data held now under the byte budget (VMHUB_MAX_INFLIGHT_MIB) for uploads, hashing and inspection.',
  ),
  bufferPoolBytes: gauge(
    'vmhub_buffer_pool_bytes',
    'Bytes of idle block buffers the transfer buffer pool keeps for the next blocks.',
  ),
  hashingQueueDepth: gauge(
    'vmhub_hashing_queue_depth',
    'Requests sent to the hashing threads and not answered yet (queued behind others or being hashed).',
  ),
};

/** The kind of verification failure a typed error is, if it is one. */
export function verificationKindOf(type: string | undefined): VerificationKind | undefined {
  switch (type) {
    case 'ManifestMismatch':
      return 'manifest';
    case 'CertificateInvalid':
      return 'certificate';
    default:
      return PROVENANCE_FAILURES.includes(type as ErrorType) ? 'signature' : undefined;
  }
}

/** Counts a failure when it is content failing verification (by its type); returns it, to be thrown. */
export function noteVerificationFailure<E>(err: E): E {
  const type = (err as { type?: unknown } | undefined)?.type;
  const kind = verificationKindOf(typeof type === 'string' ? type : undefined);
  if (kind) metrics.verificationFailures.inc({ kind });
  return err;
}

/**
 * Replica records by location and state, read from the catalog when scraped (the control worker sets the
 * reader). Cached for `REPLICA_CACHE_MS`, so a burst of scrapes reads the catalog once; a failed read, or
 * one not answered within `REPLICA_READ_WAIT_MS`, keeps the last values (a late answer is kept for the
 * next scrape): a scrape must not fail or time out for the catalog, or the process would look down.
 */
export interface ReplicaCount {
  location: string;
  state: string;
  count: number;
}

const REPLICA_CACHE_MS = 15_000;
const REPLICA_READ_WAIT_MS = 2_000;
let replicaReader: { read: () => Promise<ReplicaCount[]>; at: number; last: ReplicaCount[] } | undefined;

new Gauge({
  name: 'vmhub_replicas',
  help: 'Replica records by storage location and state (verified, pending, stale, failed), read from the catalog at scrape time (control worker only).',
  labelNames: ['location', 'state'],
  registers: [registry],
  async collect() {
    const reader = replicaReader;
    if (!reader) return;
    if (Date.now() - reader.at >= REPLICA_CACHE_MS) {
      reader.at = Date.now();
      const reading = reader.read().then(
        (counts) => void (reader.last = counts),
        () => undefined,
      );
      await settleWithin(reading, REPLICA_READ_WAIT_MS);
    }
    this.reset();
    for (const r of reader.last) this.set({ location: r.location, state: r.state }, r.count);
  },
});

/** Has `vmhub_replicas` read from this reader at scrape time. */
export function watchReplicas(read: () => Promise<ReplicaCount[]>): void {
  replicaReader = { read, at: 0, last: [] };
}

let defaultsOn = false;

/** Adds the process metrics (memory, CPU, event loop lag, GC) under `vmhub_`: only where the endpoint serves them. */
export function collectProcessMetrics(): void {
  if (defaultsOn) return;
  defaultsOn = true;
  collectDefaultMetrics({ register: registry, prefix: 'vmhub_' });
}
