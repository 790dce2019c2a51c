import dns from 'node:dns';
import net from 'node:net';
import { VmhubError } from '../shared/errors';
import { credentialOf, type SourceCredential } from '../topology/topology';
import { nonPublicReason } from './address';
import { metrics } from '../observability/metrics';

/**
 * Which http(s) servers a worker may fetch images from. With an allow-list
 * (`VMHUB_SOURCE_HOSTS`), only the hosts on it, over http or https, whatever their addresses. Without
 * one, any host over https whose every address is public, checked after DNS resolution on each
 * connection, and the connection made to the address that was checked.
 */
export interface SourcePolicy {
  /** Exact host names (or IP literals) and `*.suffix` patterns, as `parseSourceHosts` normalizes them. */
  hosts: readonly string[];
  /** Named source credentials (topology `sources`): a token appended to URLs under a prefix. */
  credentials: readonly SourceCredential[];
  /** Where credential tokens are read at request time: the worker's own environment by default. */
  env?: NodeJS.ProcessEnv;
  /** Resolves a host name to all its addresses: the system resolver by default. */
  resolve?: (hostname: string) => Promise<dns.LookupAddress[]>;
}

export const STRICT_POLICY: SourcePolicy = { hosts: [], credentials: [] };

/** The redirects one request may follow, each re-checked. */
export const MAX_REDIRECTS = 5;

/** `VMHUB_SOURCE_HOSTS`: comma-separated host names, IP addresses or `*.suffix` patterns, normalized as URLs write them. */
export function parseSourceHosts(text: string): string[] {
  return text
    .split(',')
    .map((entry) => entry.trim().toLowerCase())
    .filter((entry) => entry !== '')
    .map((entry) => {
      const wildcard = entry.startsWith('*.');
      const host = wildcard ? entry.slice(2) : entry;
      const literal = net.isIPv6(host) ? `[${host}]` : host;
      const hostname = /^(\[[0-9a-f:.]+\]|[a-z0-9_.-]+)$/.test(literal) ? hostnameOf(literal) : '';
      if (hostname === '' || (wildcard && isIpLiteral(hostname))) {
        throw new Error(`VMHUB_SOURCE_HOSTS entry "${entry}" is not a host name, an IP address or *.suffix`);
      }
      return `${wildcard ? '*.' : ''}${hostname.replace(/\.$/, '')}`;
    });
}

function hostnameOf(host: string): string {
  try {
    return new URL(`http://${host}/`).hostname;
  } catch {
    return '';
  }
}

function isIpLiteral(hostname: string): boolean {
  return net.isIPv4(hostname) || hostname.startsWith('[');
}

function onAllowList(hostname: string, hosts: readonly string[]): boolean {
  const host = hostname.replace(/\.$/, '');
  return hosts.some((entry) => (entry.startsWith('*.') ? !isIpLiteral(host) && host.endsWith(entry.slice(1)) : host === entry));
}

/** Why the policy refused a source, as `vmhub_source_policy_refusals_total` labels it: a short fixed word. */
type RefusalReason =
  | 'scheme'
  | 'credentials-in-url'
  | 'host-not-listed'
  | 'plain-http'
  | 'non-public-address'
  | 'no-usable-address'
  | 'credential-missing'
  | 'credential-invalid';

function refusal(reason: RefusalReason, message: string): VmhubError {
  metrics.sourcePolicyRefusals.inc({ reason });
  return new VmhubError('InvalidSource', message);
}

function refuse(reason: RefusalReason, message: string): never {
  throw refusal(reason, message);
}

/**
 * Checks one URL a request is about to go to: the source itself or a redirect's target. Returns the
 * lookup to connect with when the host's addresses still have to be checked, after resolution.
 */
export function checkTarget(url: URL, policy: SourcePolicy): net.LookupFunction | undefined {
  const where = redact(url.href);
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    refuse('scheme', `${where}: only http and https sources are supported`);
  if (url.username || url.password) refuse('credentials-in-url', `${where}: a source URL may not carry credentials`);
  if (policy.hosts.length > 0) {
    if (!onAllowList(url.hostname, policy.hosts))
      refuse('host-not-listed', `${where}: host ${url.hostname} is not in VMHUB_SOURCE_HOSTS`);
    return undefined;
  }
  if (url.protocol === 'http:')
    refuse('plain-http', `${where}: plain http is accepted only from hosts listed in VMHUB_SOURCE_HOSTS`);
  if (isIpLiteral(url.hostname)) {
    const address = url.hostname.replace(/^\[|\]$/g, '');
    const reason = nonPublicReason(address);
    if (reason) refuse('non-public-address', `${where}: ${address} is a ${reason} address`);
    return undefined;
  }
  return checkedLookup(url.hostname, policy.resolve ?? systemResolve);
}

function systemResolve(hostname: string): Promise<dns.LookupAddress[]> {
  return dns.promises.lookup(hostname, { all: true, verbatim: true });
}

/**
 * A lookup for net.connect that resolves the host, refuses it unless every address is public, and
 * hands over exactly the addresses it checked: DNS answering differently between a check and the
 * connection cannot reach another address, since there is no second resolution.
 */
export function checkedLookup(host: string, resolve: (hostname: string) => Promise<dns.LookupAddress[]>): net.LookupFunction {
  return (hostname, options, callback) => {
    resolve(hostname)
      .then((found) => {
        const bad = found.map((a) => [a.address, nonPublicReason(a.address)] as const).find(([, reason]) => reason);
        if (bad) throw refusal('non-public-address', `${host} resolves to ${bad[0]}, a ${bad[1]} address`);
        const usable = found.filter((a) => !options.family || a.family === options.family);
        if (usable.length === 0) throw refusal('no-usable-address', `${host} has no usable address`);
        return usable;
      })
      .then(
        (usable) => (options.all ? callback(null, usable) : callback(null, usable[0].address, usable[0].family)),
        (err: NodeJS.ErrnoException) => callback(err, ''),
      );
  };
}

/**
 * Whether a URL is under a credential's prefix, by whole path segments: `…/images` and `…/images/`
 * cover `…/images/a.ova`, never `…/images-evil/a.ova`.
 */
function underPrefix(url: URL, prefix: URL): boolean {
  if (url.origin !== prefix.origin) return false;
  const directory = prefix.pathname.endsWith('/') ? prefix.pathname : `${prefix.pathname}/`;
  return url.pathname === prefix.pathname || url.pathname.startsWith(directory);
}

/**
 * The request target (path and query) for a URL: a URL under a named source credential's prefix gets
 * that credential's token, read now from the worker's environment, as its query. Returns the token
 * too, so messages about the request can be scrubbed of it.
 */
export function requestTarget(url: URL, policy: SourcePolicy): { path: string; secret?: string } {
  if (url.search !== '') return { path: `${url.pathname}${url.search}` };
  const credential = policy.credentials
    .filter((c) => underPrefix(url, new URL(c.urlPrefix)))
    .sort((a, b) => b.urlPrefix.length - a.urlPrefix.length)[0];
  if (!credential) return { path: url.pathname };
  const token = credentialOf(policy.env ?? process.env, credential.sasTokenEnv)?.replace(/^\?/, '');
  if (!token) {
    refuse(
      'credential-missing',
      `source credential ${credential.id} needs ${credential.sasTokenEnv} (or ${credential.sasTokenEnv}_FILE), which this worker lacks`,
    );
  }
  if (/[\s#\0-\x1f\x7f]/.test(token))
    refuse('credential-invalid', `source credential ${credential.id}: ${credential.sasTokenEnv} is not a URL query`);
  return { path: `${url.pathname}?${token}`, secret: token };
}

/** A URL as it may be shown: no credentials, no query string (where SAS tokens live), no fragment. */
export function redact(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}${u.search ? '?…' : ''}`;
  } catch {
    return '<url>';
  }
}

/** A message with every occurrence of a secret replaced. */
export function scrub(message: string, secret: string | undefined): string {
  return secret ? message.split(secret).join('…') : message;
}
