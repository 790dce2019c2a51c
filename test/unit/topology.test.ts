import fs from 'node:fs';
import path from 'node:path';
import { VmhubError } from '../../src/shared/errors';
import os from 'node:os';
import { credentialOf, dataCentersByDistance, interpolate, parseTopology, primaryLocation } from '../../src/topology/topology';

const defaultTopology = fs.readFileSync(path.resolve(__dirname, '../../config/topology.json'), 'utf8');

describe('topology', () => {
  it('reads the default topology with ports from the environment', () => {
    const t = parseTopology(defaultTopology, { AZURITE_DC_WEST_PORT: '20010' });
    expect(primaryLocation(t).endpoint).toBe('http://127.0.0.1:10000/devstoreaccount1');
    expect(t.storage.find((s) => s.role === 'replica')!.endpoint).toBe('http://127.0.0.1:20010/devstoreaccount1');
    expect(t.sddcs.map((s) => `${s.name}@${s.dataCenter}`)).toEqual(['east-1@dc-east', 'east-2@dc-east', 'west-1@dc-west']);
  });

  it.each([
    ['${A}', { A: 'x' }, 'x'],
    ['${A:-d}', {}, 'd'],
    ['${A:-d}', { A: '' }, 'd'],
    ['p${A}q${B:-2}', { A: '1' }, 'p1q2'],
  ])('interpolates %s', (value, env, expected) => {
    expect(interpolate(value, env)).toBe(expected);
  });

  it('names a missing variable', () => {
    expect(() => interpolate('${NOPE}', {})).toThrow(/NOPE/);
  });

  it.each([
    ['no primary', (t: any) => (t.storage[0].role = 'replica'), /exactly one primary/],
    ['two primaries', (t: any) => (t.storage[1].role = 'primary'), /exactly one primary/],
    ['unknown data center', (t: any) => (t.storage[1].dataCenter = 'dc-moon'), /unknown data center/],
    ['bad container', (t: any) => (t.storage[0].container = 'Bad_Container'), /container/],
    ['duplicate ids', (t: any) => (t.storage[1].id = t.storage[0].id), /unique/],
  ])('rejects %s', (_name, mutate, message) => {
    const t = JSON.parse(defaultTopology);
    mutate(t);
    expect(() => parseTopology(JSON.stringify(t), {})).toThrow(VmhubError);
    expect(() => parseTopology(JSON.stringify(t), {})).toThrow(message);
  });

  it('orders data centers from one outwards', () => {
    const t = parseTopology(defaultTopology, {});
    expect(dataCentersByDistance(t, 'dc-west')).toEqual(['dc-west', 'dc-east']);
  });
});

describe('storage credentials as files', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmhub-cred-'));
  const file = path.join(dir, 'key');
  fs.writeFileSync(file, 'a2V5ZnJvbWZpbGU=\n');

  it('reads X_FILE when X is unset or empty, X itself when set, nothing without either', () => {
    expect(credentialOf({ KEY_FILE: file }, 'KEY')).toBe('a2V5ZnJvbWZpbGU=');
    expect(credentialOf({ KEY: '', KEY_FILE: file }, 'KEY')).toBe('a2V5ZnJvbWZpbGU=');
    expect(credentialOf({ KEY: 'direct', KEY_FILE: file }, 'KEY')).toBe('direct');
    expect(credentialOf({}, 'KEY')).toBeUndefined();
    expect(credentialOf({ KEY_FILE: file }, undefined)).toBeUndefined();
  });

  it('a file that cannot be read is a topology error naming the variable and the file, never a value', () => {
    const missing = path.join(dir, 'missing');
    expect(() => credentialOf({ KEY_FILE: missing }, 'KEY')).toThrow(VmhubError);
    expect(() => credentialOf({ KEY_FILE: missing }, 'KEY')).toThrow(`cannot read KEY_FILE ${missing}: ENOENT`);
  });
});
