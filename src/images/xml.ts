import { parser as saxParser, type SAXParser } from 'sax';
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

/**
 * What one descriptor may hold, checked as each tag is read, so the parse stops at the first breach:
 * the tree, and the work to build it, stay linear in the bytes read and within these counts. Real
 * descriptors use a few hundred elements and a handful of attributes on each.
 */
export const XML_LIMITS = {
  elements: 100_000,
  attributesPerElement: 256,
  attributes: 200_000,
  namespaceDeclarations: 256,
  depth: 64,
} as const;

const XML_NS = 'http://www.w3.org/XML/1998/namespace';
const XSI = 'http://www.w3.org/2001/XMLSchema-instance';

type Scope = ReadonlyMap<string, string>;

interface Open {
  el: XmlElement;
  /** Attributes as written (`p:name`), resolved once the tag's declarations are all known. */
  raw: Array<{ name: string; value: string }>;
  scope: Scope;
  text: string;
}

/** The tree built from sax's events, each limit checked at the event that would breach it. */
class TreeBuilder {
  root?: XmlElement;
  private readonly stack: Open[] = [];
  private pending?: Open;
  private elements = 0;
  private attributes = 0;
  private declarations = 0;

  constructor(private readonly what: string) {}

  private breach(limit: keyof typeof XML_LIMITS, detail: string): never {
    throw new VmhubError('InvalidImage', `${this.what} exceeds the XML limit on ${detail} (${limit}: ${XML_LIMITS[limit]})`);
  }

  openStart(): void {
    if (++this.elements > XML_LIMITS.elements) this.breach('elements', 'elements');
    if (this.stack.length + 1 > XML_LIMITS.depth) this.breach('depth', 'nesting depth');
    if (this.stack.length === 0 && this.root) throw new VmhubError('InvalidImage', `${this.what} has more than one root element`);
    const parent = this.stack[this.stack.length - 1];
    this.pending = {
      el: { ns: '', local: '', attrs: [], children: [], text: '' },
      raw: [],
      scope: parent?.scope ?? ROOT_SCOPE,
      text: '',
    };
  }

  attribute(name: string, value: string): void {
    const open = this.pending!;
    if (open.raw.length + 1 > XML_LIMITS.attributesPerElement) this.breach('attributesPerElement', 'attributes on one element');
    if (++this.attributes > XML_LIMITS.attributes) this.breach('attributes', 'attributes');
    if (name === 'xmlns' || name.startsWith('xmlns:')) {
      if (++this.declarations > XML_LIMITS.namespaceDeclarations) this.breach('namespaceDeclarations', 'namespace declarations');
    }
    open.raw.push({ name, value });
  }

  open(name: string): void {
    const open = this.pending!;
    this.pending = undefined;
    const declared = open.raw.filter((a) => a.name === 'xmlns' || a.name.startsWith('xmlns:'));
    if (declared.length > 0) {
      const scope = new Map(open.scope);
      for (const d of declared) scope.set(d.name === 'xmlns' ? '' : d.name.slice(6), d.value.trim());
      open.scope = scope;
    }
    const [ns, local] = this.resolve(name, open.scope, true);
    open.el.ns = ns;
    open.el.local = local;
    for (const a of open.raw) {
      if (a.name === 'xmlns' || a.name.startsWith('xmlns:')) continue;
      const [attrNs, attrLocal] = this.resolve(a.name, open.scope, false);
      open.el.attrs.push({ ns: attrNs, local: attrLocal, value: a.value });
    }
    open.raw = [];
    const parent = this.stack[this.stack.length - 1];
    if (parent) parent.el.children.push(open.el);
    else this.root = open.el;
    this.stack.push(open);
  }

  /** A qualified name's namespace and local name; an unprefixed attribute is in no namespace. */
  private resolve(name: string, scope: Scope, element: boolean): [string, string] {
    const colon = name.indexOf(':');
    if (colon < 0) return [element ? (scope.get('') ?? '') : '', name];
    const prefix = name.slice(0, colon);
    const uri = scope.get(prefix);
    if (!uri) throw new VmhubError('InvalidImage', `${this.what} uses the unbound namespace prefix ${quoted(prefix)}`);
    return [uri, name.slice(colon + 1)];
  }

  text(text: string): void {
    const top = this.stack[this.stack.length - 1];
    if (top) top.text += text;
  }

  close(): void {
    const open = this.stack.pop()!;
    open.el.text = open.text.trim();
  }
}

const ROOT_SCOPE: Scope = new Map([['xml', XML_NS]]);

function listen(parser: SAXParser, tree: TreeBuilder): void {
  parser.onerror = (err) => {
    throw err;
  };
  parser.onopentagstart = () => tree.openStart();
  parser.onattribute = (a) => tree.attribute(a.name, a.value);
  parser.onopentag = (tag) => tree.open(tag.name);
  parser.onclosetag = () => tree.close();
  parser.ontext = (text) => tree.text(text);
  parser.oncdata = (text) => tree.text(text);
}

/**
 * Parses a descriptor: bounded in size and in what it holds (XML_LIMITS, checked as it is read), and
 * any DOCTYPE (so any entity declaration) is refused, never expanded. sax runs without its namespace
 * mode, which compares each attribute with every earlier one of its element (quadratic in a tag's
 * attributes); namespaces are resolved here instead.
 */
export function parseXml(text: string, what = 'descriptor'): XmlElement {
  if (Buffer.byteLength(text) > MAX_DESCRIPTOR_BYTES) {
    throw new VmhubError('InvalidImage', `${what} is larger than ${MAX_DESCRIPTOR_BYTES / 1024 / 1024} MiB`);
  }
  if (/<!DOCTYPE|<!ENTITY/i.test(text)) {
    throw new VmhubError('InvalidImage', `${what} declares a DOCTYPE or entities, which are not accepted`);
  }
  const tree = new TreeBuilder(what);
  const parser = saxParser(true, { xmlns: false, position: true });
  listen(parser, tree);
  try {
    parser.write(text).close();
  } catch (err) {
    if (err instanceof VmhubError) throw err;
    throw new VmhubError('InvalidImage', `${what} is not well-formed XML: ${(err as Error).message.split('\n')[0]}`);
  }
  if (!tree.root) throw new VmhubError('InvalidImage', `${what} has no root element`);
  return tree.root;
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
