import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import type { VcenterTrust } from './agent-vcenter';
import type { Credentials } from './vcenter-login';
import { inSpan } from '../observability/spans';
import { VcenterHttp } from './http';
import { UploadOnThread, type UploadWriter } from './upload-on-thread';

/**
 * The vSphere Automation REST API (`/rest/com/vmware/…`, as vCenter 6.5 to 8 and vcsim serve it) in one
 * logged-in session. The session ID lives only in this object: it is sent in the
 * `vmware-api-session-id` header and never appears in an error, a result or a log.
 */
export const SESSION_HEADER = 'vmware-api-session-id';

/** A call the vCenter refused: `type` is its vAPI error type (`…errors.already_exists`), when it sent one. */
export class VsphereApiError extends Error {
  override name = 'VsphereApiError';
  constructor(
    readonly status: number,
    readonly type: string | undefined,
    message: string,
  ) {
    super(message);
  }

  get alreadyExists(): boolean {
    return this.type?.endsWith('already_exists') === true;
  }

  get notFound(): boolean {
    return this.status === 404 || this.type?.endsWith('not_found') === true;
  }
}

/**
 * A path fit for a message or a span: identifiers after `id:` and in session queries are replaced, since
 * an update session's ID opens that session (vcsim even takes it as a login), and so is all after the
 * transfer prefix of an upload or download endpoint, which names the session: vcsim's `/cis/data/`, a
 * vCenter's `/cls-data/`.
 */
export function redactPath(path: string): string {
  return path
    .replace(/\/id:[^/?]*/g, '/id:…')
    .replace(/((?:update|download)_session_id=)[^&]*/g, '$1…')
    .replace(/\/(cis\/data|cls-data)\/.*$/, '/$1/…');
}

/**
 * A vCenter's refusal of a login, its message without the user name or password: a vCenter (or anything
 * posing as one) may echo them in the text it sends, and the message travels to the workflow history, the
 * catalog's rows and the logs. Only the vCenter's own errors carry its text; vmhub's own messages never
 * name the login. The error keeps its class and fields, so it is still classified the same.
 */
export function withoutCredentials(err: unknown, credentials: Credentials): unknown {
  if (!(err instanceof VsphereApiError)) return err;
  let message = err.message;
  for (const secret of [credentials.password, credentials.username]) {
    if (secret) message = message.split(secret).join('…');
  }
  if (message !== err.message) {
    err.message = message;
    // The stack begins with the message it was made with.
    err.stack = `${err.name}: ${message}`;
  }
  return err;
}

/** An upload started: the bytes go to `upload` as they come; `sent` settles with the vCenter's answer. */
export interface StartedUpload {
  upload: UploadWriter;
  sent: Promise<void>;
}

export interface RestCall {
  signal?: AbortSignal;
  idleTimeoutMs?: number;
}

export class VsphereRest {
  private constructor(
    readonly http: VcenterHttp,
    private readonly sessionId: string,
  ) {}

  /**
   * Logs in with basic auth; the session comes back in the body (header authn), not as a cookie. No error
   * of it names the user or carries the password.
   */
  static async login(
    vcenter: string,
    credentials: Credentials,
    options: { trust: VcenterTrust; signal?: AbortSignal },
  ): Promise<VsphereRest> {
    const http = new VcenterHttp(vcenter, options.trust);
    return inSpan('vmhub.vcenter', { operation: 'POST /rest/com/vmware/cis/session' }, () =>
      VsphereRest.session(http, credentials, options.signal),
    );
  }

  private static async session(http: VcenterHttp, credentials: Credentials, signal?: AbortSignal): Promise<VsphereRest> {
    try {
      const basic = Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64');
      const res = await http.request({
        method: 'POST',
        path: '/rest/com/vmware/cis/session',
        headers: { authorization: `Basic ${basic}`, 'vmware-use-header-authn': 'true' },
        signal,
      });
      if (res.status === 401 || res.status === 403) {
        throw new VsphereApiError(
          res.status,
          'unauthenticated',
          `vCenter ${http.origin} refused the agent's login (HTTP ${res.status})`,
        );
      }
      const id = parseValue<string>(res.status, res.body, 'POST /rest/com/vmware/cis/session');
      if (typeof id !== 'string' || id.length === 0)
        throw new Error(`vCenter ${http.origin} answered the login without a session`);
      return new VsphereRest(http, id);
    } catch (err) {
      http.close();
      throw withoutCredentials(err, credentials);
    }
  }

  get<T>(path: string, call?: RestCall): Promise<T> {
    return this.json<T>('GET', path, undefined, call);
  }

  post<T>(path: string, body?: unknown, call?: RestCall): Promise<T> {
    return this.json<T>('POST', path, body, call);
  }

  patch(path: string, body: unknown, call?: RestCall): Promise<void> {
    return this.json<void>('PATCH', path, body, call);
  }

  delete(path: string, call?: RestCall): Promise<void> {
    return this.json<void>('DELETE', path, undefined, call);
  }

  /** Sends a file's bytes to an upload endpoint the vCenter handed out. */
  upload(endpoint: string, size: number, body: () => Readable, what: string, call?: RestCall): Promise<void> {
    const put = this.putTo(endpoint);
    const answer = () =>
      this.http.request({
        method: 'PUT',
        ...put,
        body,
        contentLength: size,
        signal: call?.signal,
        idleTimeoutMs: call?.idleTimeoutMs,
      });
    return uploaded(put.path, size, what, answer);
  }

  /**
   * Starts sending `size` bytes, written as they come, to an upload endpoint the vCenter handed out, from
   * a thread of its own (./upload-on-thread). `sent` settles with the vCenter's answer.
   */
  startUpload(endpoint: string, size: number, what: string, call: RestCall & { signal: AbortSignal }): StartedUpload {
    const put = this.putTo(endpoint);
    const target = {
      origin: this.http.origin,
      trust: this.http.trust,
      ...put,
      contentLength: size,
      idleTimeoutMs: call.idleTimeoutMs,
    };
    const upload = new UploadOnThread(target, call.signal);
    return { upload, sent: uploaded(put.path, size, what, () => upload.answered) };
  }

  /** An upload endpoint's path on this vCenter, and the headers of a PUT to it in this session. */
  private putTo(endpoint: string): { path: string; headers: Record<string, string> } {
    return {
      path: this.http.pathOf(endpoint),
      headers: { [SESSION_HEADER]: this.sessionId, 'content-type': 'application/octet-stream' },
    };
  }

  /** A file's bytes from a download endpoint the vCenter handed out, as a stream. */
  async download(endpoint: string, what: string, call?: RestCall): Promise<IncomingMessage> {
    // The span ends with the answer's headers: the body is the caller's stream.
    const operation = `GET ${redactPath(this.http.pathOf(endpoint))}`;
    const res = await inSpan('vmhub.vcenter', { operation }, () =>
      this.http.open({
        method: 'GET',
        path: endpoint,
        headers: { [SESSION_HEADER]: this.sessionId },
        signal: call?.signal,
        idleTimeoutMs: call?.idleTimeoutMs,
      }),
    );
    if (res.statusCode !== 200) {
      res.resume();
      throw new VsphereApiError(res.statusCode ?? 0, undefined, `download of ${what} failed with HTTP ${res.statusCode}`);
    }
    return res;
  }

  /** Ends the session; a vCenter that is gone by then has ended it anyway. */
  async logout(): Promise<void> {
    try {
      await this.http.request({
        method: 'DELETE',
        path: '/rest/com/vmware/cis/session',
        headers: { [SESSION_HEADER]: this.sessionId },
        idleTimeoutMs: 10_000,
      });
    } catch {
      // the session times out on the vCenter
    } finally {
      this.http.close();
    }
  }

  private json<T>(method: string, path: string, body: unknown, call?: RestCall): Promise<T> {
    return inSpan('vmhub.vcenter', { operation: `${method} ${redactPath(path)}` }, () => this.send<T>(method, path, body, call));
  }

  private async send<T>(method: string, path: string, body: unknown, call?: RestCall): Promise<T> {
    const res = await this.http.request({
      method,
      path,
      headers: {
        [SESSION_HEADER]: this.sessionId,
        accept: 'application/json',
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : Buffer.from(JSON.stringify(body)),
      signal: call?.signal,
      idleTimeoutMs: call?.idleTimeoutMs,
    });
    return parseValue<T>(res.status, res.body, `${method} ${redactPath(path)}`);
  }
}

/** The `value` of a `/rest` answer; anything but 2xx is a VsphereApiError. */
function parseValue<T>(status: number, body: Buffer, what: string): T {
  if (status < 200 || status >= 300) throw apiError(status, body, what);
  if (body.length === 0) return undefined as T;
  try {
    return (JSON.parse(body.toString('utf8')) as { value?: T }).value as T;
  } catch {
    throw new Error(`${what} answered with something other than JSON`);
  }
}

/** An upload's PUT, answered by `answer`, in its span; a refusal is the vCenter's typed error. */
async function uploaded(
  path: string,
  size: number,
  what: string,
  answer: () => Promise<{ status: number; body: Buffer }>,
): Promise<void> {
  const res = await inSpan('vmhub.vcenter', { operation: `PUT ${redactPath(path)}`, bytes: size }, answer);
  if (res.status < 200 || res.status >= 300) throw apiError(res.status, res.body, `upload of ${what}`);
}

function apiError(status: number, body: Buffer, what: string): VsphereApiError {
  let type: string | undefined;
  let detail = '';
  try {
    const parsed = JSON.parse(body.toString('utf8')) as {
      type?: string;
      error_type?: string;
      value?: { messages?: Array<{ default_message?: string }> };
      messages?: Array<{ default_message?: string }>;
    };
    type = parsed.type ?? parsed.error_type;
    const messages = parsed.value?.messages ?? parsed.messages ?? [];
    detail = messages
      .map((m) => m.default_message)
      .filter(Boolean)
      .join('; ');
  } catch {
    detail = body.toString('utf8').split('\n')[0].slice(0, 200);
  }
  const name = type?.replace(/^com\.vmware\.vapi\.std\.errors\./, '');
  return new VsphereApiError(
    status,
    type,
    `${what} failed with HTTP ${status}${name ? ` ${name}` : ''}${detail ? `: ${detail}` : ''}`,
  );
}
