import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { familiesOf, mergeExpositions, parseMetricsAddress, serveMetrics } from '../../src/observability/metrics-server';
import {
  metrics,
  noteVerificationFailure,
  verificationKindOf,
  watchReplicas,
  type ReplicaCount,
} from '../../src/observability/metrics';
import { VmhubError } from '../../src/shared/errors';
import { invalidLines, metricFamilyNames, sampleValue, scrape } from '../harness/prometheus';

describe('VMHUB_METRICS_ADDRESS', () => {
  it.each([
    [undefined, undefined],
    ['', undefined],
    ['  ', undefined],
    [':9464', { host: '127.0.0.1', port: 9464 }],
    [':0', { host: '127.0.0.1', port: 0 }],
    ['127.0.0.1:9464', { host: '127.0.0.1', port: 9464 }],
    ['0.0.0.0:9464', { host: '0.0.0.0', port: 9464 }],
    ['metrics.internal:80', { host: 'metrics.internal', port: 80 }],
    ['[::1]:9464', { host: '::1', port: 9464 }],
  ])('%j is %j', (value, expected) => {
    expect(parseMetricsAddress(value)).toEqual(expected);
  });

  it.each(['9464', 'localhost', 'host:', 'host:65536', 'host:port', '::1:9464', 'a b:1', 'http://host:9464'])(
    'refuses %j, saying what it takes',
    (value) => {
      expect(() => parseMetricsAddress(value)).toThrow(/is not host:port: use e\.g\. 127\.0\.0\.1:9464, or :9464/);
    },
  );
});

const OWN = `# HELP vmhub_staged_bytes_total Bytes staged.
# TYPE vmhub_staged_bytes_total counter
vmhub_staged_bytes_total{image="edge",location="east-primary"} 6291456
# HELP vmhub_hashing_queue_depth Requests queued.
# TYPE vmhub_hashing_queue_depth gauge
vmhub_hashing_queue_depth 0
`;

const SDK = `# HELP temporal_num_pollers Current number of active pollers per queue type
# TYPE temporal_num_pollers gauge
temporal_num_pollers{namespace="default",poller_type="activity_task",task_queue="q"} 5
# HELP vmhub_hashing_queue_depth A family of the same name, served by vmhub already.
# TYPE vmhub_hashing_queue_depth gauge
vmhub_hashing_queue_depth 7
# HELP temporal_request_latency_seconds Histogram of client request latencies
# TYPE temporal_request_latency_seconds histogram
temporal_request_latency_seconds_bucket{operation="StartWorkflowExecution",le="0.05"} 1
temporal_request_latency_seconds_bucket{operation="StartWorkflowExecution",le="+Inf"} 1
temporal_request_latency_seconds_sum{operation="StartWorkflowExecution"} 0.01
temporal_request_latency_seconds_count{operation="StartWorkflowExecution"} 1
`;

describe('the merged exposition', () => {
  it("is vmhub's families, then the SDK's it does not have, and parses", () => {
    const merged = mergeExpositions(OWN, SDK);
    expect(invalidLines(merged)).toEqual([]);
    const families = parsePrometheusTextFormat(merged);
    expect(families.map((f) => f.name)).toEqual([
      'vmhub_staged_bytes_total',
      'vmhub_hashing_queue_depth',
      'temporal_num_pollers',
      'temporal_request_latency_seconds',
    ]);
    // vmhub's own sample of the shared name is the one served.
    expect(families[1].metrics).toEqual([{ value: '0' }]);
    expect(families[3].type).toBe('HISTOGRAM');
    expect(merged.endsWith('\n')).toBe(true);
  });

  it("is vmhub's alone when the SDK's exporter gave nothing", () => {
    expect(mergeExpositions(OWN, '')).toBe(OWN);
    expect(familiesOf(mergeExpositions(OWN.trimEnd(), SDK))).toEqual(
      new Set([
        'vmhub_staged_bytes_total',
        'vmhub_hashing_queue_depth',
        'temporal_num_pollers',
        'temporal_request_latency_seconds',
      ]),
    );
  });

  it('a second HELP of one family or a malformed sample is found invalid', () => {
    expect(invalidLines(`${OWN}${OWN}`)).toHaveLength(4);
    expect(invalidLines('vmhub_x{image="a"} twelve\n')).toEqual(['vmhub_x{image="a"} twelve']);
  });
});

describe('the endpoint', () => {
  it("serves vmhub's registry with the process metrics at GET /metrics, and nothing elsewhere", async () => {
    const endpoint = await serveMetrics({ host: '127.0.0.1', port: 0 });
    try {
      metrics.verificationFailures.inc({ kind: 'block' });
      const before = sampleValue(await scrape(`http://${endpoint.address}/metrics`), 'vmhub_verification_failures_total', {
        kind: 'signature',
      });
      expect(noteVerificationFailure(new VmhubError('UntrustedSignature', 'signed by nobody we trust')).type).toBe(
        'UntrustedSignature',
      );
      noteVerificationFailure(new VmhubError('SourceChanged', 'not a verification failure'));
      const s = await scrape(`http://${endpoint.address}/metrics`);
      expect(invalidLines(s.text)).toEqual([]);
      expect(sampleValue(s, 'vmhub_verification_failures_total', { kind: 'signature' })).toBe((before ?? 0) + 1);
      // Outcomes an alert watches are there at 0 before the first, so that increase() sees the first one.
      expect(sampleValue(s, 'vmhub_verification_failures_total', { kind: 'certificate' })).toBe(0);
      expect(sampleValue(s, 'vmhub_deployments_total', { outcome: 'failed' })).toBe(0);
      expect(sampleValue(s, 'vmhub_rollout_gates_total', { outcome: 'failed' })).toBe(0);
      expect(metricFamilyNames(s)).toContain('vmhub_process_resident_memory_bytes');
      expect(metricFamilyNames(s)).toContain('vmhub_replicas');
      expect((await fetch(`http://${endpoint.address}/`)).status).toBe(404);
    } finally {
      await endpoint.close();
    }
  });

  it('answers while the catalog does not, and serves the replica counts read since at the next scrape', async () => {
    const endpoint = await serveMetrics({ host: '127.0.0.1', port: 0 });
    try {
      let answer: (counts: ReplicaCount[]) => void = () => undefined;
      watchReplicas(() => new Promise((resolve) => (answer = resolve)));
      const first = await scrape(`http://${endpoint.address}/metrics`);
      expect(invalidLines(first.text)).toEqual([]);
      expect(sampleValue(first, 'vmhub_replicas', { location: 'west-replica', state: 'stale' })).toBeUndefined();
      answer([{ location: 'west-replica', state: 'stale', count: 2 }]);
      const next = await scrape(`http://${endpoint.address}/metrics`);
      expect(sampleValue(next, 'vmhub_replicas', { location: 'west-replica', state: 'stale' })).toBe(2);
    } finally {
      await endpoint.close();
    }
  });

  it.each([
    ['ManifestMismatch', 'manifest'],
    ['CertificateInvalid', 'certificate'],
    ['UnsignedImage', 'signature'],
    ['ProvenanceMismatch', 'signature'],
    ['InvalidImage', undefined],
  ])('counts %s as %s', (type, kind) => {
    expect(verificationKindOf(type)).toBe(kind);
  });
});
