import fs from 'node:fs';
import { VmhubError } from '../shared/errors';
import { isLoopbackUrl, parseVcenterUrl } from '../shared/target-kinds/content-library';
import type { Credentials } from './vcenter-login';

/**
 * The vCenter an agent serves, from the agent's own environment and files only: its URL, how its
 * certificate is trusted, and its login. The catalog's target may name a vCenter too, but it is only
 * checked against this one (`checkTaskTarget`), never obeyed.
 */
export interface AgentVcenter {
  /** The normalised URL (`new URL(…).href`). */
  url: string;
  tls: VcenterTrust;
  credentials: Credentials;
}

/**
 * How the vCenter's certificate is trusted: the system's CAs, a CA bundle of the agent's, one certificate
 * pinned by its SHA-256 (a self-signed vCenter), or none at all, only for a vCenter on the loopback.
 */
export type VcenterTrust =
  { kind: 'system' } | { kind: 'ca'; ca: string; file: string } | { kind: 'thumbprint'; sha256: string } | { kind: 'insecure' };

/** The agent's variables, documented in the README's configuration table. */
export const VCENTER_ENV = {
  url: 'VMHUB_VCENTER_URL',
  caFile: 'VMHUB_VCENTER_CA_FILE',
  thumbprint: 'VMHUB_VCENTER_THUMBPRINT',
  insecure: 'VMHUB_VCENTER_INSECURE_TLS',
  usernameFile: 'VMHUB_VCENTER_USERNAME_FILE',
  passwordFile: 'VMHUB_VCENTER_PASSWORD_FILE',
} as const;

/** vcsim's own login, which it takes when it was started without one: like Azurite's key, only for the loopback. */
const SIMULATOR_LOGIN: Credentials = { username: 'user', password: 'pass' };

/** What an agent without a vCenter of its own is told to set. */
export const NOT_CONFIGURED =
  `this agent has no vCenter of its own: set ${VCENTER_ENV.url}, its trust (${VCENTER_ENV.caFile} or ` +
  `${VCENTER_ENV.thumbprint}; ${VCENTER_ENV.insecure}=1 only for a loopback vCenter) and its login ` +
  `(${VCENTER_ENV.usernameFile} and ${VCENTER_ENV.passwordFile}) in the agent's environment`;

export type ReadSecret = (file: string) => string;

const readFileText: ReadSecret = (file) => fs.readFileSync(file, 'utf8');

/**
 * The agent's vCenter, or undefined when it has none (its content-library tasks are then refused with
 * VcenterNotConfigured). A configuration that is set but wrong is an error at once, so the agent does not
 * start with it. Errors name variables and files, never what the files hold.
 */
export function loadAgentVcenter(env: NodeJS.ProcessEnv, read: ReadSecret = readFileText): AgentVcenter | undefined {
  const set = (name: string) => (env[name] ?? '') !== '';
  if (!set(VCENTER_ENV.url)) {
    const stray = Object.values(VCENTER_ENV).filter(set);
    if (stray.length > 0) throw invalid(`${stray.join(', ')} given without ${VCENTER_ENV.url}`);
    return undefined;
  }
  const url = parseVcenterUrl(env[VCENTER_ENV.url], (msg) => {
    throw invalid(`${VCENTER_ENV.url}: ${msg}`);
  });
  return { url: url.href, tls: trustOf(env, url, read), credentials: loginOf(env, url, read) };
}

function trustOf(env: NodeJS.ProcessEnv, url: URL, read: ReadSecret): VcenterTrust {
  const caFile = env[VCENTER_ENV.caFile] || undefined;
  const thumbprint = env[VCENTER_ENV.thumbprint] || undefined;
  const insecure = env[VCENTER_ENV.insecure] || undefined;
  if (insecure !== undefined && insecure !== '1' && insecure !== '0') throw invalid(`${VCENTER_ENV.insecure} must be 1 or 0`);
  const given: Array<[unknown, string]> = [
    [caFile, VCENTER_ENV.caFile],
    [thumbprint, VCENTER_ENV.thumbprint],
    [insecure === '1', VCENTER_ENV.insecure],
  ];
  const named = given.filter(([on]) => Boolean(on)).map(([, name]) => name);
  if (named.length > 1) throw invalid(`set only one of ${named.join(', ')}`);
  if (insecure === '1') {
    // A certificate nobody vouches for is as good as none: only a vCenter on this machine may be reached so.
    if (!isLoopbackUrl(url))
      throw invalid(
        `${VCENTER_ENV.insecure}=1 is only for a vCenter on the loopback; set ${VCENTER_ENV.caFile} or ${VCENTER_ENV.thumbprint}`,
      );
    return { kind: 'insecure' };
  }
  if ((caFile || thumbprint) && url.protocol !== 'https:') throw invalid(`${named[0]} needs an https ${VCENTER_ENV.url}`);
  if (thumbprint) return { kind: 'thumbprint', sha256: parseThumbprint(thumbprint) };
  if (caFile) {
    const ca = readNamed(read, caFile, VCENTER_ENV.caFile);
    if (!ca.includes('-----BEGIN CERTIFICATE-----')) throw invalid(`${VCENTER_ENV.caFile} (${caFile}) holds no PEM certificate`);
    return { kind: 'ca', ca, file: caFile };
  }
  return { kind: 'system' };
}

/** A SHA-256 thumbprint as vCenter and openssl print it (`AB:CD:…`) or plain hex; lower-case hex out. */
export function parseThumbprint(text: string): string {
  const hex = text
    .trim()
    .replace(/^sha256[:=]/i, '')
    .replace(/:/g, '')
    .toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(hex))
    throw invalid(`${VCENTER_ENV.thumbprint} must be a SHA-256 thumbprint (64 hex digits, colons allowed)`);
  return hex;
}

function loginOf(env: NodeJS.ProcessEnv, url: URL, read: ReadSecret): Credentials {
  const usernameFile = env[VCENTER_ENV.usernameFile] || undefined;
  const passwordFile = env[VCENTER_ENV.passwordFile] || undefined;
  if (!usernameFile && !passwordFile) {
    if (isLoopbackUrl(url)) return SIMULATOR_LOGIN;
    throw invalid(`set ${VCENTER_ENV.usernameFile} and ${VCENTER_ENV.passwordFile}: files holding the vCenter login`);
  }
  if (!usernameFile || !passwordFile)
    throw invalid(`set both ${VCENTER_ENV.usernameFile} and ${VCENTER_ENV.passwordFile}, or neither`);
  // One trailing newline is the file's, not the secret's (`echo … > file`).
  const username = readNamed(read, usernameFile, VCENTER_ENV.usernameFile).replace(/\r?\n$/, '');
  const password = readNamed(read, passwordFile, VCENTER_ENV.passwordFile).replace(/\r?\n$/, '');
  if (!username || !password)
    throw invalid(`${VCENTER_ENV.usernameFile} and ${VCENTER_ENV.passwordFile} must name files that are not empty`);
  return { username, password };
}

/** A file's text; a failure names the variable and the path, never the content. */
function readNamed(read: ReadSecret, file: string, variable: string): string {
  try {
    return read(file);
  } catch (err) {
    throw invalid(`${variable}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

function invalid(msg: string): VmhubError {
  return new VmhubError('InvalidInput', `the agent's vCenter configuration: ${msg}`);
}

/**
 * Whether a task's target, as the catalog gave it, may run on this agent's vCenter: it must name the same
 * URL, and ask for no looser trust than the agent holds (`insecureTls` where the agent checks the
 * certificate). Login variable names a target carries (`usernameEnv`, `passwordEnv`, from before agents
 * held their own) are not read at all. Checked before any connection is opened.
 */
export function checkTaskTarget(raw: unknown, sddc: string, vcenter: AgentVcenter | undefined): AgentVcenter {
  if (!vcenter) throw new VmhubError('VcenterNotConfigured', `SDDC ${sddc}: ${NOT_CONFIGURED}`);
  const t = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<string, unknown>;
  let named: string | undefined;
  try {
    named = new URL(String(t.vcenter)).href;
  } catch {
    named = undefined;
  }
  if (named !== vcenter.url) {
    throw new VmhubError(
      'VcenterMismatch',
      `SDDC ${sddc}: the catalog's target names the vCenter ${printableUrl(t.vcenter)}, but this agent serves ${vcenter.url}; ` +
        `nothing was sent to either. Correct the target (\`vmhub sddc update ${sddc} --vcenter ${vcenter.url}\`) or the agent's ${VCENTER_ENV.url}`,
    );
  }
  if (t.insecureTls === true && vcenter.tls.kind !== 'insecure') {
    throw new VmhubError(
      'VcenterMismatch',
      `SDDC ${sddc}: the catalog's target asks to accept any certificate of ${vcenter.url}, but this agent checks it (${vcenter.tls.kind}); ` +
        `the agent's own configuration decides its trust: \`vmhub sddc update ${sddc} --vcenter ${vcenter.url}\` drops the request`,
    );
  }
  return vcenter;
}

/** A catalog value fit for a message: a URL without user info, or a short quoted text. */
function printableUrl(value: unknown): string {
  try {
    const url = new URL(String(value));
    url.username = '';
    url.password = '';
    return url.href;
  } catch {
    return JSON.stringify(String(value).slice(0, 80));
  }
}
