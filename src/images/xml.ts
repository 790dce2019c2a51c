import { Parser } from 'xml2js';
import { VmhubError } from '../shared/errors';

/**
 * A namespace-aware XML tree for untrusted descriptors. Elements and attributes are matched by
 * namespace URI and local name, never by prefix. Names from the document never become object keys
 * here: children and attributes are arrays, so no key from the image can reach a prototype.
 */
export interface XmlElement {
  ns: string;
  local: string;
  attrs: XmlAttr[];
  children: XmlElement[];
  text: string;
}

export interface XmlAttr {
  ns: string;
  local: string;
  value: string;
}

export const MAX_DESCRIPTOR_BYTES = 4 * 1024 * 1024;
const MAX_DEPTH = 64;
const XSI = 'http://www.w3.org/2001/XMLSchema-instance';

interface RawNode {
  '#name'?: string;
  $ns?: { uri?: string; local?: string };
  $?: Record<string, { uri?: string; local?: string; value?: string }>;
  $$?: RawNode[];
  _?: string;
}

function convert(raw: RawNode, depth: number): XmlElement {
  if (depth > MAX_DEPTH) throw new VmhubError('InvalidImage', `descriptor nests deeper than ${MAX_DEPTH} elements`);
  const attrs: XmlAttr[] = [];
  for (const a of Object.values(raw.$ ?? {})) {
    if (a.uri === 'http://www.w3.org/2000/xmlns/') continue;
    attrs.push({ ns: (a.uri ?? '').trim(), local: a.local ?? '', value: String(a.value ?? '') });
  }
  const children = (raw.$$ ?? [])
    .filter((c) => typeof c === 'object' && c['#name'] !== '__text__')
    .map((c) => convert(c, depth + 1));
  return {
    ns: (raw.$ns?.uri ?? '').trim(),
    local: raw.$ns?.local ?? raw['#name'] ?? '',
    attrs,
    children,
    text: typeof raw._ === 'string' ? raw._.trim() : '',
  };
}

/** Parses a descriptor: bounded in size, and any DOCTYPE (so any entity declaration) is refused, never expanded. */
export async function parseXml(text: string, what = 'descriptor'): Promise<XmlElement> {
  if (Buffer.byteLength(text) > MAX_DESCRIPTOR_BYTES) {
    throw new VmhubError('InvalidImage', `${what} is larger than ${MAX_DESCRIPTOR_BYTES / 1024 / 1024} MiB`);
  }
  if (/<!DOCTYPE|<!ENTITY/i.test(text)) {
    throw new VmhubError('InvalidImage', `${what} declares a DOCTYPE or entities, which are not accepted`);
  }
  const parser = new Parser({
    xmlns: true,
    explicitChildren: true,
    preserveChildrenOrder: true,
    explicitArray: true,
    strict: true,
  });
  let doc: Record<string, RawNode>;
  try {
    doc = (await parser.parseStringPromise(text)) as Record<string, RawNode>;
  } catch (err) {
    throw new VmhubError('InvalidImage', `${what} is not well-formed XML: ${(err as Error).message.split('\n')[0]}`);
  }
  const roots = Object.values(doc ?? {});
  if (roots.length !== 1 || typeof roots[0] !== 'object') throw new VmhubError('InvalidImage', `${what} has no root element`);
  return convert(roots[0], 0);
}

export type NsTest = (ns: string) => boolean;

/** A name or text from an image as it may be shown in a one-line message. */
export function quoted(text: string): string {
  return JSON.stringify(text.slice(0, 200));
}

/** The element's local name, or for OVF 0.9's `<Section xsi:type="ovf:DiskSection_Type">` the typed name (`DiskSection`). */
export function kind(el: XmlElement): string {
  if (el.local === 'Section' || el.local === 'Content') {
    const t = el.attrs.find((a) => a.ns === XSI && a.local === 'type')?.value;
    if (t) return t.replace(/^.*:/, '').replace(/_Type$/, '');
  }
  return el.local;
}

export function children(el: XmlElement | undefined, local: string, ns?: NsTest): XmlElement[] {
  return (el?.children ?? []).filter((c) => kind(c) === local && (!ns || ns(c.ns)));
}

export function child(el: XmlElement | undefined, local: string, ns?: NsTest): XmlElement | undefined {
  return children(el, local, ns)[0];
}

export function childText(el: XmlElement | undefined, local: string, ns?: NsTest): string | undefined {
  const c = child(el, local, ns);
  return c && c.text !== '' ? c.text : undefined;
}

/** An attribute by local name; `ns` picks among namespaces, and unqualified attributes always match. */
export function attr(el: XmlElement | undefined, local: string, ns?: NsTest): string | undefined {
  const a = el?.attrs.find((x) => x.local === local && (x.ns === '' || !ns || ns(x.ns)));
  return a?.value;
}
