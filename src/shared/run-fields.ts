/**
 * The fields a workflow's or an activity's log lines carry from its input, so every line names what it
 * works on: `image`, `version`, `sddc` and `location` (a storage location's ID) of the first argument,
 * where it has them as names. Nothing else is taken: inputs carry no credential, but a log line should
 * not grow with whatever a new input field holds. Deterministic: the workflow interceptor uses it too.
 */
export type RunFields = Partial<Record<'image' | 'version' | 'sddc' | 'location', string>>;

const NAMES = ['image', 'version', 'sddc'] as const;

export function runFields(input: unknown): RunFields {
  if (input === null || typeof input !== 'object') return {};
  const record = input as Record<string, unknown>;
  const fields: RunFields = {};
  for (const name of NAMES) if (typeof record[name] === 'string') fields[name] = record[name];
  // A blob location ({ storage, blob }) names its storage location; a replica's is a plain ID.
  const location = record.location;
  if (typeof location === 'string') fields.location = location;
  else if (location !== null && typeof location === 'object') {
    const storage = (location as Record<string, unknown>).storage;
    if (typeof storage === 'string') fields.location = storage;
  }
  return fields;
}
