/**
 * The redaction pass every log line goes through: credentials are kept out of workflow inputs, but an
 * error message from a storage or vCenter client can still quote a URL with its SAS token, a connection
 * string or a login. What is recognised here is replaced by REDACTED before the line is written.
 */
export const REDACTED = '[redacted]';

/**
 * Meta keys whose values are credentials by name: `accountKey`, `sasToken`, `clientSecret`, `password`,
 * `Authorization`. A key ending in "key" is one only with a credential's prefix: a `key`, a `tapKey` or a
 * `publicKey` names what a line is about and is kept.
 */
const SECRET_KEY =
  /((account|api|access|private|secret|shared|signing|storage|master|encryption|client)key|token|secret|password|passwd|passphrase|authorization|cookie|connectionstring|credentials?|sas)$/i;

/** `=` and `:` as written, or URL-encoded when a URL is quoted inside another URL's query. */
const EQ = '(?:=|%3D)';
/** The start of a query parameter: not inside a longer name (`blocksig=`), also after an encoded or escaped `&`. */
const PARAM = '(?:(?<![A-Za-z0-9_])|(?<=%26|%3F|\\\\u0026))';

/** Credential shapes inside free text, each keeping its name and losing its value. */
const SECRET_TEXT: Array<[RegExp, string]> = [
  // A SAS token's signature, in a URL's query (plain, or encoded inside another URL) or a SharedAccessSignature.
  [new RegExp(`${PARAM}(sig${EQ})(?:(?!%26)[^&;\\s"'<>\\\\])+`, 'gi'), `$1${REDACTED}`],
  [new RegExp(`((?:SharedAccessSignature|AccountKey)${EQ})[^;\\s"']+`, 'gi'), `$1${REDACTED}`],
  // `password=…`, `password: …`, `"password":"…"`, `\"password\":\"…\"` (and passwd, pwd, secret).
  [/((?:password|passwd|pwd|secret)\\?"?\s*(?:[:=]|%3A|%3D)\s*\\?"?)[^\s"',;&\\]+/gi, `$1${REDACTED}`],
  // Azure's shared-key header is `SharedKey account:signature`: the whole value goes.
  [/(Authorization\\?"?\s*[:=]\s*\\?"?(?:Bearer |Basic |SharedKey(?:Lite)? )?)[^\s"',;\\]+/gi, `$1${REDACTED}`],
  [/(Bearer )[A-Za-z0-9._~+/=-]{8,}/g, `$1${REDACTED}`],
  // The password of a URL's user info: mongodb://user:password@host, https://user:password@vcenter/.
  [/([a-z][a-z0-9+.-]*:\/\/[^\s/:@]+:)[^\s/@]+@/gi, `$1${REDACTED}@`],
];

/** Every shape above needs one of these; a line without any (most of them) skips the passes. */
const MAY_HOLD_SECRET = /[=:]|%3[AD]|bearer /i;

export function redactText(text: string): string {
  if (!MAY_HOLD_SECRET.test(text)) return text;
  return SECRET_TEXT.reduce((out, [pattern, replacement]) => out.replace(pattern, replacement), text);
}

/** Errors are reduced to their name, type and message: a stack or a cause could quote anything. */
function plainError(error: Error): Record<string, string> {
  const type = (error as { type?: unknown }).type;
  return { error: error.name, ...(typeof type === 'string' ? { type } : {}), message: redactText(error.message) };
}

/**
 * A copy of a log line's value with every credential replaced: strings by their shapes, object entries by
 * their keys' names. Numbers and booleans under a secret-sounding key (`maxTokens`) stay: no credential
 * is a number. Errors, at any depth, become their name, type and message; bytes become their length, not
 * a list of numbers no shape could recognise. An object that contains itself is written once, then `[circular]`.
 */
export function redact(value: unknown, within = new WeakSet<object>()): unknown {
  if (typeof value === 'string') return redactText(value);
  if (typeof value === 'bigint') return value.toString();
  if (value === null || typeof value !== 'object') return value;
  if (value instanceof Error) return plainError(value);
  if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) return `[${value.byteLength} bytes]`;
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
