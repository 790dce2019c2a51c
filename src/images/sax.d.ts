/** The part of sax that ./xml uses: its strict parser without namespace mode (sax ships no types of its own). */
declare module 'sax' {
  export interface Tag {
    name: string;
  }
  export interface Attribute {
    name: string;
    value: string;
  }
  export interface SAXParser {
    onerror: (err: Error) => void;
    onopentagstart: (tag: Tag) => void;
    onattribute: (attr: Attribute) => void;
    onopentag: (tag: Tag) => void;
    onclosetag: (name: string) => void;
    ontext: (text: string) => void;
    oncdata: (text: string) => void;
    ondoctype: (doctype: string) => void;
    write(text: string): SAXParser;
    close(): SAXParser;
  }
  export function parser(strict: boolean, options?: { xmlns?: boolean; position?: boolean }): SAXParser;
}
