/**
 * The redaction pass every log line goes through: credentials are kept out of workflow inputs, but an
 * error message from a storage or vCenter client can still quote a URL with its SAS token, a connection
 * string or a login. What is recognised here is replaced by REDACTED before the line is written.
 */
export const REDACTED = '[redacted]';

/** Meta keys whose values are credentials by name: `accountKey`, `sasToken`, `clientSecret`, `password`, `Authorization`. */
const SECRET_KEY = /(key|secret|token|password|passwd|passphrase|authorization|cookie|connectionstring|credentials?|sas)$/i;

/** Credential shapes inside free text, each keeping its name and losing its value. */
const SECRET_TEXT: Array<[RegExp, string]> = [
  // A SAS token's signature, in a URL's query or a connection string's SharedAccessSignature.
  [/(?<![A-Za-z0-9_])(sig=)[^&;\s"'<>]+/gi, `$1${REDACTED}`],
  [/(SharedAccessSignature=)[^;\s"']+/gi, `$1${REDACTED}`],
  [/(AccountKey=)[^;\s"']+/gi, `$1${REDACTED}`],
  // `password=…`, `password: …`, `"password":"…"` (and passwd, pwd, secret).
  [/((?:password|passwd|pwd|secret)"?\s*[:=]\s*"?)[^\s"',;&]+/gi, `$1${REDACTED}`],
  [/(Authorization"?\s*[:=]\s*"?(?:Bearer |Basic )?)[^\s"',;]+/gi, `$1${REDACTED}`],
  [/(Bearer )[A-Za-z0-9._~+/=-]{8,}/g, `$1${REDACTED}`],
  // The password of a URL's user info: mongodb://user:password@host, https://user:password@vcenter/.
  [/([a-z][a-z0-9+.-]*:\/\/[^\s/:@]+:)[^\s/@]+@/gi, `$1${REDACTED}@`],
];

export function redactText(text: string): string {
  return SECRET_TEXT.reduce((out, [pattern, replacement]) => out.replace(pattern, replacement), text);
}

/**
 * A copy of a log line's value with every credential replaced: strings by their shapes, object entries by
 * their keys' names. Numbers and booleans under a secret-sounding key (`maxTokens`) stay: no credential
 * is a number. An object that contains itself is written once, then `[circular]`.
 */
export function redact(value: unknown, within = new WeakSet<object>()): unknown {
  if (typeof value === 'string') return redactText(value);
  if (typeof value === 'bigint') return value.toString();
  if (value === null || typeof value !== 'object') return value;
  // A Date (or anything else with its own JSON form) is redacted as it will be written.
  if (typeof (value as { toJSON?: unknown }).toJSON === 'function')
    return redact((value as { toJSON(): unknown }).toJSON(), within);
  if (within.has(value)) return '[circular]';
  within.add(value);
  const copy = Array.isArray(value)
    ? value.map((v) => redact(v, within))
    : Object.fromEntries(
        Object.entries(value).map(([k, v]) => [k, SECRET_KEY.test(k) && isSecretValue(v) ? REDACTED : redact(v, within)]),
      );
  within.delete(value);
  return copy;
}

function isSecretValue(value: unknown): boolean {
  return value !== null && value !== undefined && typeof value !== 'number' && typeof value !== 'boolean';
}
