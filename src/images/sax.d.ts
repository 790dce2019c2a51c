/** The part of sax (a dependency of xml2js) that ./xml uses: its strict parser without namespace mode. */
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
