import fs from 'node:fs';
import path from 'node:path';
import yaml from 'js-yaml';

const OBSERVABILITY_DIR = path.resolve(__dirname, '..', '..', 'observability');
const ALERTS_FILE = path.join(OBSERVABILITY_DIR, 'prometheus', 'alerts.yml');
const DASHBOARD_FILE = path.join(OBSERVABILITY_DIR, 'grafana', 'vmhub.json');

/** vmhub's and the SDK's metric names in a PromQL expression; a histogram's series name its family. */
function metricNamesInExpr(expr: string): string[] {
  return [...expr.matchAll(/\b(?:vmhub|temporal)_[a-zA-Z0-9_:]*/g)].map(([name]) => name.replace(/_(bucket|sum|count)$/, ''));
}

/** Every metric family the alert rules and the dashboard read, of the files that exist; sorted. */
export function metricNamesInArtifacts(): string[] {
  const exprs: string[] = [];
  if (fs.existsSync(ALERTS_FILE)) {
    const rules = yaml.load(fs.readFileSync(ALERTS_FILE, 'utf8')) as { groups: Array<{ rules: Array<{ expr: string }> }> };
    exprs.push(...rules.groups.flatMap((g) => g.rules.map((r) => r.expr)));
  }
  if (fs.existsSync(DASHBOARD_FILE)) {
    // Every `expr` anywhere in the dashboard, rows' panels included.
    JSON.parse(fs.readFileSync(DASHBOARD_FILE, 'utf8'), (key, value: unknown) => {
      if (key === 'expr' && typeof value === 'string') exprs.push(value);
      return value;
    });
  }
  return [...new Set(exprs.flatMap(metricNamesInExpr))].sort();
}
