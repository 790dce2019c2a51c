import { Parser, processors } from 'xml2js';
import type { VcenterTrust } from './agent-vcenter';
import type { Credentials } from './vcenter-login';
import { inSpan } from '../observability/spans';
import { VcenterHttp } from './http';
import { VsphereApiError, withoutCredentials } from './vsphere-rest';

/** The type of a VsphereApiError for a vCenter task that ended in error, as opposed to a call that failed. */
export const TASK_FAILED = 'TaskFailed';

/**
 * The few vSphere Web Services (SOAP, `/sdk`) calls the REST API of vcsim lacks: the IDs of datastores
 * and resource pools, a VM's configured CPUs, memory and runtime state, and its power operations. One logged-in session; its cookie, and the
 * view IDs that embed it, never leave this object.
 */
const VIM_VERSION = '8.0.2.0';

/** A power task takes a second or two on a vCenter, less on a simulator. */
const TASK_POLL_MS = 250;

export interface ManagedObject {
  type: string;
  id: string;
}

/** One object's properties as the property collector returns them: values as text, references as `type:id`. */
export interface ObjectProperties {
  obj: ManagedObject;
  props: Record<string, string>;
}

interface ServiceContent {
  rootFolder: string;
  propertyCollector: string;
  viewManager: string;
  sessionManager: string;
}

type Node = Record<string, unknown> & { _?: string; $?: Record<string, string> };

/** Element prefixes go; attribute names stay whole, so a reference's `type` is not confused with `xsi:type`. */
const parser = new Parser({ explicitArray: true, tagNameProcessors: [processors.stripPrefix] });

export function escapeXml(text: string): string {
  return text.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

function moref(tag: string, o: ManagedObject): string {
  return `<${tag} type="${escapeXml(o.type)}">${escapeXml(o.id)}</${tag}>`;
}

function text(node: unknown): string {
  if (typeof node === 'string') return node;
  return ((node as Node | undefined)?._ ?? '').trim();
}

function first(node: Node | undefined, key: string): Node | undefined {
  return (node?.[key] as Node[] | undefined)?.[0];
}

function all(node: Node | undefined, key: string): Node[] {
  return (node?.[key] as Node[] | undefined) ?? [];
}

/** The `<method>Response` of a SOAP response body, or the fault it carries as an error. */
async function soapResponse(xml: string, method: string): Promise<Node | undefined> {
  const doc = (await parser.parseStringPromise(xml)) as { Envelope?: Node };
  const body = first(doc.Envelope, 'Body');
  const fault = first(body, 'Fault');
  if (fault) {
    const detail = first(fault, 'detail');
    const kind = detail ? Object.keys(detail).find((k) => k !== '$' && k !== '_') : undefined;
    throw new VsphereApiError(500, kind?.replace(/Fault$/, ''), `${method} failed: ${text(first(fault, 'faultstring'))}`);
  }
  return first(body, `${method}Response`);
}

/** The `returnval` of a SOAP response body, or the fault it carries as an error. */
export async function soapReturn(xml: string, method: string): Promise<Node | undefined> {
  return first(await soapResponse(xml, method), 'returnval');
}

/** The objects of a RetrievePropertiesEx answer, and the token of its next page. */
export function parseObjects(returnval: Node | undefined): { objects: ObjectProperties[]; token?: string } {
  const objects = all(returnval, 'objects').map((o) => {
    const obj = first(o, 'obj');
    const props: Record<string, string> = {};
    for (const p of all(o, 'propSet')) {
      const val = first(p, 'val');
      const ref = val?.$?.type;
      props[text(first(p, 'name'))] = ref ? `${ref}:${text(val)}` : text(val);
    }
    return { obj: { type: obj?.$?.type ?? '', id: text(obj) }, props };
  });
  const token = text(first(returnval, 'token'));
  return { objects, token: token || undefined };
}

export class VimSession {
  private constructor(
    private readonly http: VcenterHttp,
    private readonly content: ServiceContent,
    private readonly cookie: string,
  ) {}

  static async login(
    vcenter: string,
    credentials: Credentials,
    options: { trust: VcenterTrust; signal?: AbortSignal },
  ): Promise<VimSession> {
    const http = new VcenterHttp(vcenter, options.trust);
    try {
      const rsc = await call(
        http,
        undefined,
        'RetrieveServiceContent',
        moref('_this', { type: 'ServiceInstance', id: 'ServiceInstance' }),
        options.signal,
      );
      const ref = (key: string) => text(first(rsc.returnval, key));
      const content = {
        rootFolder: ref('rootFolder'),
        propertyCollector: ref('propertyCollector'),
        viewManager: ref('viewManager'),
        sessionManager: ref('sessionManager'),
      };
      const login = await call(
        http,
        undefined,
        'Login',
        `${moref('_this', { type: 'SessionManager', id: content.sessionManager })}<userName>${escapeXml(credentials.username)}</userName><password>${escapeXml(credentials.password)}</password>`,
        options.signal,
      );
      const cookie = [login.setCookie ?? []]
        .flat()
        .find((c) => c.startsWith('vmware_soap_session='))
        ?.split(';')[0];
      if (!cookie) throw new Error(`vCenter ${http.origin} answered the SOAP login without a session cookie`);
      return new VimSession(http, content, cookie);
    } catch (err) {
      http.close();
      // A fault's text may echo the user name it refused.
      throw withoutCredentials(err, credentials);
    }
  }

  /** Every object of a type in the inventory with the given properties, through a container view. */
  async objectsOfType(type: string, props: string[], signal?: AbortSignal): Promise<ObjectProperties[]> {
    const created = await this.call(
      'CreateContainerView',
      `${moref('_this', { type: 'ViewManager', id: this.content.viewManager })}${moref('container', { type: 'Folder', id: this.content.rootFolder })}<type>${escapeXml(type)}</type><recursive>true</recursive>`,
      signal,
    );
    const view: ManagedObject = { type: 'ContainerView', id: text(created) };
    try {
      return await this.retrieve(
        `<propSet><type>${escapeXml(type)}</type>${props.map((p) => `<pathSet>${escapeXml(p)}</pathSet>`).join('')}</propSet><objectSet>${moref('obj', view)}<skip>true</skip><selectSet xsi:type="TraversalSpec"><name>view</name><type>ContainerView</type><path>view</path><skip>false</skip></selectSet></objectSet>`,
        signal,
      );
    } finally {
      await this.call('DestroyView', moref('_this', view)).catch(() => undefined);
    }
  }

  /** Properties of one object; a missing object is a VsphereApiError of type ManagedObjectNotFound. */
  async properties(obj: ManagedObject, props: string[], signal?: AbortSignal): Promise<Record<string, string>> {
    const found = await this.retrieve(
      `<propSet><type>${escapeXml(obj.type)}</type>${props.map((p) => `<pathSet>${escapeXml(p)}</pathSet>`).join('')}</propSet><objectSet>${moref('obj', obj)}</objectSet>`,
      signal,
    );
    return found[0]?.props ?? {};
  }

  /**
   * Runs a task method of an object (`PowerOnVM_Task`, `PowerOffVM_Task`) and waits for the task to end; a
   * task that ends in error is a VsphereApiError of the fault's type with its message.
   */
  async runTask(method: string, obj: ManagedObject, signal?: AbortSignal): Promise<void> {
    // A task that ended in error is the vCenter's answer (type TASK_FAILED); a failed call is not, and may pass.
    const task: ManagedObject = { type: 'Task', id: text(await this.call(method, moref('_this', obj), signal)) };
    for (;;) {
      const { 'info.state': state } = await this.properties(task, ['info.state'], signal);
      if (state === 'success') return;
      if (state === 'error') {
        const info = await this.properties(task, ['info.error.localizedMessage'], signal);
        const reason = info['info.error.localizedMessage'] || 'the vCenter gave no reason';
        throw new VsphereApiError(500, TASK_FAILED, `${method} failed: ${reason}`);
      }
      await new Promise((r) => setTimeout(r, TASK_POLL_MS));
      signal?.throwIfAborted();
    }
  }

  /**
   * The virtual hardware versions (`vmx-21`, ...) a compute resource's environment browser says VMs can be
   * created with.
   */
  async creatableHardwareVersions(browser: ManagedObject, signal?: AbortSignal): Promise<string[]> {
    const res = await call(this.http, this.cookie, 'QueryConfigOptionDescriptor', moref('_this', browser), signal);
    return all(res.response, 'returnval')
      .filter((d) => text(first(d, 'createSupported')) !== 'false')
      .map((d) => text(first(d, 'key')));
  }

  async logout(): Promise<void> {
    try {
      await this.call('Logout', moref('_this', { type: 'SessionManager', id: this.content.sessionManager }));
    } catch {
      // the session times out on the vCenter
    } finally {
      this.http.close();
    }
  }

  private async retrieve(specSet: string, signal?: AbortSignal): Promise<ObjectProperties[]> {
    const pc = moref('_this', { type: 'PropertyCollector', id: this.content.propertyCollector });
    let page = parseObjects(
      await this.call('RetrievePropertiesEx', `${pc}<specSet>${specSet}</specSet><options></options>`, signal),
    );
    const objects = [...page.objects];
    while (page.token) {
      page = parseObjects(
        await this.call('ContinueRetrievePropertiesEx', `${pc}<token>${escapeXml(page.token)}</token>`, signal),
      );
      objects.push(...page.objects);
    }
    return objects;
  }

  private async call(method: string, args: string, signal?: AbortSignal): Promise<Node | undefined> {
    return (await call(this.http, this.cookie, method, args, signal)).returnval;
  }
}

/** `send`, in a span that names the SOAP method. */
function call(...args: Parameters<typeof send>): ReturnType<typeof send> {
  const [, , method] = args;
  return inSpan('vmhub.vcenter', { operation: `SOAP ${method}` }, () => send(...args));
}

async function send(
  http: VcenterHttp,
  cookie: string | undefined,
  method: string,
  args: string,
  signal?: AbortSignal,
): Promise<{ returnval: Node | undefined; response: Node | undefined; setCookie?: string[] }> {
  const envelope =
    '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" ' +
    `xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><${method} xmlns="urn:vim25">${args}</${method}></soapenv:Body></soapenv:Envelope>`;
  const res = await http.request({
    method: 'POST',
    path: '/sdk',
    headers: {
      'content-type': 'text/xml; charset=utf-8',
      soapaction: `"urn:vim25/${VIM_VERSION}"`,
      ...(cookie ? { cookie } : {}),
    },
    body: Buffer.from(envelope),
    signal,
  });
  const xml = res.body.toString('utf8');
  if (!xml.includes('Envelope')) throw new VsphereApiError(res.status, undefined, `${method} failed with HTTP ${res.status}`);
  const response = await soapResponse(xml, method);
  return { returnval: first(response, 'returnval'), response, setCookie: res.headers['set-cookie'] };
}
