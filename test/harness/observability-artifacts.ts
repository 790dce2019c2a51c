import fs from 'node:fs';
import path from 'node:path';
import yaml from 'js-yaml';

/** The dashboard, alert rules and collector config the compose profile `observability` runs (README: Observability). */
export const OBSERVABILITY_DIR = path.resolve(__dirname, '..', '..', 'observability');
export const ALERTS_FILE = path.join(OBSERVABILITY_DIR, 'prometheus', 'alerts.yml');
export const DASHBOARD_FILE = path.join(OBSERVABILITY_DIR, 'grafana', 'vmhub.json');

export interface AlertRule {
  alert: string;
  expr: string;
  for: string;
  labels: { severity: string };
  annotations: { summary: string; description: string; runbook: string };
}

export interface DashboardPanel {
  type: string;
  title: string;
  datasource?: { type?: string; uid?: string };
  targets?: Array<{ expr?: string }>;
  panels?: DashboardPanel[];
}

export function alertRules(): AlertRule[] {
  const file = yaml.load(fs.readFileSync(ALERTS_FILE, 'utf8')) as { groups: Array<{ rules: AlertRule[] }> };
  return file.groups.flatMap((g) => g.rules);
}

/** Every panel of the dashboard, those inside collapsed rows included; rows themselves are not panels that query. */
export function dashboardPanels(): DashboardPanel[] {
  const dashboard = JSON.parse(fs.readFileSync(DASHBOARD_FILE, 'utf8')) as { panels: DashboardPanel[] };
  return dashboard.panels.flatMap((p) => (p.type === 'row' ? (p.panels ?? []) : [p]));
}

const KEYWORDS = new Set([
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'and',
  'or',
  'unless',
  'offset',
  'bool',
]);
const HISTOGRAM_SERIES = /_(bucket|sum|count)$/;

/**
 * The metric families a PromQL expression reads: what is left once strings, label matchers, grouping
 * clauses, ranges, functions, keywords and numbers are taken out; a histogram's series name its family.
 */
export function metricNamesInExpr(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\boffset\s+\S+/g, ' ');
  const names = new Set<string>();
  for (const match of bare.matchAll(/(?<![\w.$])([a-zA-Z_:][\w:]*)(\s*\()?/g)) {
    const [, name, call] = match;
    if (call || KEYWORDS.has(name) || name === 'up') continue;
    names.add(name.replace(HISTOGRAM_SERIES, ''));
  }
  return [...names];
}

/** Every metric family the alert rules' expressions and the dashboard's panel targets read, sorted. */
export function metricNamesInArtifacts(): string[] {
  const exprs = [
    ...alertRules().map((r) => r.expr),
    ...dashboardPanels().flatMap((p) => (p.targets ?? []).map((t) => t.expr ?? '')),
  ];
  return [...new Set(exprs.flatMap(metricNamesInExpr))].sort();
}
