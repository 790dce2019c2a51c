import parsePrometheusTextFormat, { type ParsedFamily } from 'parse-prometheus-text-format';

/** A scrape of a `/metrics` endpoint: its text, and the families a real parser reads from it. */
export interface Scrape {
  text: string;
  families: ParsedFamily[];
}

export async function scrape(url: string): Promise<Scrape> {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url} answered ${response.status}`);
  const text = await response.text();
  return { text, families: parsePrometheusTextFormat(text) };
}

/** The metric family names a scrape returned. */
export function metricFamilyNames(s: Scrape): Set<string> {
  return new Set(s.families.map((f) => f.name));
}

/** The value of the one sample of `name` whose labels include `labels`; undefined when there is none. */
export function sampleValue(s: Scrape, name: string, labels: Record<string, string> = {}): number | undefined {
  const family = s.families.find((f) => f.name === name);
  const matching = (family?.metrics ?? []).filter((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
  if (matching.length > 1) throw new Error(`${matching.length} samples of ${name} match ${JSON.stringify(labels)}`);
  return matching[0]?.value === undefined ? undefined : Number(matching[0].value);
}

/** A sample line of the text format: name, optional labels, a value, an optional timestamp (NaN and Inf in any case, as Prometheus reads them). */
const SAMPLE =
  /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? (?:[-+]?(?:[0-9.]+(?:e[-+]?[0-9]+)?|Inf)|NaN)( -?[0-9]+)?$/i;

/** The lines of a text-format exposition that break it: malformed samples and a second HELP or TYPE of one family. */
export function invalidLines(text: string): string[] {
  const seen = new Set<string>();
  const bad: string[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const comment = /^# (HELP|TYPE) (\S+)/.exec(line);
    if (comment) {
      const key = `${comment[1]} ${comment[2]}`;
      if (seen.has(key)) bad.push(line);
      seen.add(key);
    } else if (!line.startsWith('#') && !SAMPLE.test(line)) bad.push(line);
  }
  return bad;
}
