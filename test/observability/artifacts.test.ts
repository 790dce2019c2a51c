import fs from 'node:fs';
import path from 'node:path';
import yaml from 'js-yaml';
import {
  alertRules,
  ALERTS_FILE,
  dashboardPanels,
  metricNamesInArtifacts,
  metricNamesInExpr,
  OBSERVABILITY_DIR,
} from '../harness/observability-artifacts';

const ROOT = path.resolve(__dirname, '..', '..');
const readYaml = (file: string) => yaml.load(fs.readFileSync(path.join(ROOT, file), 'utf8'));

/** vmhub's metric families (README: Observability), prom-client's process metrics among them. */
const VMHUB_METRICS = [
  'vmhub_staged_bytes_total',
  'vmhub_inspected_bytes_total',
  'vmhub_committed_bytes_total',
  'vmhub_replicated_bytes_total',
  'vmhub_crossed_bytes_total',
  'vmhub_downloaded_bytes_total',
  'vmhub_verification_failures_total',
  'vmhub_replicas',
  'vmhub_deployments_total',
  'vmhub_rollout_waves_total',
  'vmhub_rollout_gates_total',
  'vmhub_source_policy_refusals_total',
  'vmhub_byte_budget_used_bytes',
  'vmhub_buffer_pool_bytes',
  'vmhub_hashing_queue_depth',
  'vmhub_process_resident_memory_bytes',
];

/** GitHub's anchor of a Markdown heading. */
const anchorOf = (heading: string) =>
  heading
    .trim()
    .toLowerCase()
    .replace(/[^\w\- ]/g, '')
    .replace(/ /g, '-');

describe('observability artifacts', () => {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const anchors = new Set([...readme.matchAll(/^#{1,6} (.+)$/gm)].map((m) => anchorOf(m[1])));

  it('reads the metric families out of PromQL, not its functions, labels, keywords or ranges', () => {
    expect(
      metricNamesInExpr(
        'histogram_quantile(0.95, sum by (task_queue, le) (rate(temporal_x_seconds_bucket{a="b(c)"}[$__rate_interval])))',
      ),
    ).toEqual(['temporal_x_seconds']);
    expect(
      metricNamesInExpr('sum(rate(m_total[30m])) < 0.5 * sum(rate(m_total[30m] offset 1d)) and on (x) g > 0').sort(),
    ).toEqual(['g', 'm_total']);
    expect(metricNamesInExpr('up{job=~"vmhub.*"} == 0')).toEqual([]);
  });

  it('has alert rules each with a duration, a severity, a summary, a description and a runbook in the README', () => {
    const rules = alertRules();
    expect(rules.map((r) => r.alert).sort()).toEqual(
      [
        'VmhubDeployFailures',
        'VmhubMetricsDown',
        'VmhubReplicaFailed',
        'VmhubReplicaStale',
        'VmhubRolloutGateFailures',
        'VmhubScheduleToStartLatencyHigh',
        'VmhubStagingThroughputHalved',
        'VmhubVerificationFailures',
        'VmhubWorkerSlotsExhausted',
      ].sort(),
    );
    for (const rule of rules) {
      expect({ alert: rule.alert, expr: typeof rule.expr, for: rule.for }).toEqual({
        alert: rule.alert,
        expr: 'string',
        for: expect.stringMatching(/^\d+[smhd]$/),
      });
      expect(rule.labels.severity).toMatch(/^(critical|warning|info)$/);
      expect(rule.annotations.summary).toEqual(expect.stringMatching(/\S/));
      expect(rule.annotations.description).toEqual(expect.stringMatching(/\S/));
      const [file, anchor] = rule.annotations.runbook.split('#');
      expect({ alert: rule.alert, file, anchor: anchors.has(anchor) }).toEqual({
        alert: rule.alert,
        file: 'README.md',
        anchor: true,
      });
    }
  });

  it('has a dashboard whose every panel queries a data source with an expression', () => {
    const dashboard = JSON.parse(fs.readFileSync(path.join(OBSERVABILITY_DIR, 'grafana', 'vmhub.json'), 'utf8')) as {
      schemaVersion: number;
      templating: { list: Array<{ name: string; type: string }> };
      panels: Array<{ type: string; title: string }>;
    };
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(39);
    expect(dashboard.templating.list).toContainEqual(expect.objectContaining({ name: 'DS_PROMETHEUS', type: 'datasource' }));
    expect(dashboard.panels.filter((p) => p.type === 'row').map((p) => p.title)).toEqual([
      'Throughput',
      'Failures',
      'Replica health',
      'Rollouts',
      'Worker health',
      'Resources',
    ]);
    const panels = dashboardPanels();
    expect(panels.length).toBeGreaterThanOrEqual(20);
    for (const panel of panels) {
      const targets = panel.targets ?? [];
      expect({
        title: panel.title,
        datasource: panel.datasource,
        queries: targets.length > 0 && targets.every((t) => t.expr?.trim()),
      }).toEqual({
        title: panel.title,
        datasource: { type: 'prometheus', uid: '${DS_PROMETHEUS}' },
        queries: true,
      });
    }
  });

  it('reads only metrics vmhub documents and exports, and the SDK’s', () => {
    const names = metricNamesInArtifacts();
    expect(names).toEqual(
      expect.arrayContaining(['vmhub_replicas', 'vmhub_staged_bytes_total', 'temporal_worker_task_slots_available']),
    );
    expect(names.filter((n) => !n.startsWith('temporal_') && !VMHUB_METRICS.includes(n))).toEqual([]);
    const observability = readme.slice(readme.indexOf('\n## Observability'));
    expect(names.filter((n) => n.startsWith('vmhub_') && !observability.includes(`\`${n}\``))).toEqual([]);
  });

  it('names in the Prometheus config the rule file that exists, and scrapes the worker and every agent', () => {
    const config = readYaml('observability/prometheus/prometheus.yml') as {
      rule_files: string[];
      scrape_configs: Array<{ job_name: string; static_configs: Array<{ targets: string[] }> }>;
    };
    // Prometheus reads rule files relative to its configuration file's directory.
    expect(config.rule_files.map((f) => path.join(OBSERVABILITY_DIR, 'prometheus', f))).toEqual([ALERTS_FILE]);
    const targets = config.scrape_configs
      .filter((s) => s.job_name.startsWith('vmhub'))
      .flatMap((s) => s.static_configs.flatMap((c) => c.targets));
    expect(targets.sort()).toEqual(['agent-east-1:9464', 'agent-east-2:9464', 'agent-west-1:9464', 'worker:9464']);
  });

  it('has a collector config that receives OTLP on both protocols and sends every exporter it defines traces', () => {
    const config = readYaml('observability/otel-collector.yml') as {
      receivers: { otlp: { protocols: { grpc: { endpoint: string }; http: { endpoint: string } } } };
      exporters: Record<string, unknown>;
      service: { pipelines: { traces: { receivers: string[]; exporters: string[] } } };
    };
    expect(config.receivers.otlp.protocols.grpc.endpoint).toBe('0.0.0.0:4317');
    expect(config.receivers.otlp.protocols.http.endpoint).toBe('0.0.0.0:4318');
    expect(config.service.pipelines.traces.receivers).toEqual(['otlp']);
    expect(config.service.pipelines.traces.exporters.sort()).toEqual(Object.keys(config.exporters).sort());
    expect(config.service.pipelines.traces.exporters).toContain('debug');
  });

  describe('the compose profile', () => {
    interface Service {
      image?: string;
      profiles?: string[];
      ports?: string[];
      volumes?: string[];
      environment?: Record<string, string>;
    }
    const compose = readYaml('docker-compose.yml') as { services: Record<string, Service> };
    const OBSERVABILITY = ['grafana', 'jaeger', 'otel-collector', 'prometheus'];

    it('runs Prometheus, Grafana, the collector and Jaeger under `observability` only, pinned by version and digest', () => {
      const profiled = Object.entries(compose.services).filter(([, s]) => s.profiles);
      expect(profiled.map(([name]) => name).sort()).toEqual(OBSERVABILITY);
      for (const [name, service] of profiled) {
        expect({ name, profiles: service.profiles }).toEqual({ name, profiles: ['observability'] });
        expect({ name, image: service.image }).toEqual({
          name,
          image: expect.stringMatching(/^[\w./-]+:v?\d+\.\d+\.\d+@sha256:[0-9a-f]{64}$/),
        });
        for (const port of service.ports ?? []) expect(port).toMatch(/^127\.0\.0\.1:/);
      }
      expect(JSON.stringify(compose)).not.toMatch(/:latest\b/);
    });

    it('mounts the files it provisions from the repository, and each exists', () => {
      const mounted = OBSERVABILITY.flatMap((name) => compose.services[name].volumes ?? [])
        .map((v) => v.split(':')[0])
        .filter((source) => source.startsWith('./'));
      expect(mounted.sort()).toEqual([
        './observability/grafana/provisioning',
        './observability/grafana/vmhub.json',
        './observability/otel-collector.yml',
        './observability/prometheus',
      ]);
      for (const source of mounted) expect(fs.existsSync(path.join(ROOT, source))).toBe(true);
      const datasources = readYaml('observability/grafana/provisioning/datasources/datasources.yml') as {
        datasources: Array<{ uid: string; url: string }>;
      };
      expect(datasources.datasources).toContainEqual(
        expect.objectContaining({ uid: 'prometheus', url: 'http://prometheus:9090' }),
      );
    });

    it('gives the worker and every agent the metrics address Prometheus scrapes and the collector’s endpoint', () => {
      for (const name of ['worker', 'agent-east-1', 'agent-east-2', 'agent-west-1']) {
        expect(compose.services[name].environment).toMatchObject({
          VMHUB_METRICS_ADDRESS: '0.0.0.0:9464',
          OTEL_EXPORTER_OTLP_ENDPOINT: 'http://otel-collector:4318',
        });
      }
    });
  });
});
