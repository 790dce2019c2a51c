import { parseTopology } from '../../src/topology/topology';
import { itemDescription, itemState } from '../../src/shared/target-kinds/content-library';
import type { ContentLibraryTarget } from '../../src/shared/target-kinds/kind';
import { describeTarget, parseTarget, targetFromOptions, targetLabel } from '../../src/shared/sddc-target';
import { typedError } from './typed-error';

const SHA = 'a'.repeat(64);
const OTHER = 'b'.repeat(64);

const library = (over: Record<string, unknown> = {}) => ({
  kind: 'content-library',
  vcenter: 'https://vc.example.com',
  library: 'vmhub',
  ...over,
});

describe('SDDC targets', () => {
  it('reads a content library target with exactly its known fields, and a directory by default', () => {
    expect(parseTarget(undefined)).toEqual({ kind: 'directory' });
    expect(parseTarget({ kind: 'directory', vcenter: 'ignored' })).toEqual({ kind: 'directory' });
    // An older target's login variables and TLS switch are not kept: the agent holds its own.
    const old = { datastore: 'LocalDS_0', insecureTls: true, usernameEnv: 'VMHUB_VC_U', passwordEnv: 'VMHUB_VC_P', extra: 1 };
    expect(parseTarget(library(old))).toEqual({
      kind: 'content-library',
      vcenter: 'https://vc.example.com/',
      library: 'vmhub',
      datastore: 'LocalDS_0',
    });
  });

  it.each([
    [library({ kind: 'nfs' }), /kind must be/],
    [library({ vcenter: 'not a url' }), /not a URL/],
    [library({ vcenter: 'https://admin:secret@vc.example.com/' }), /without credentials/],
    [library({ vcenter: 'https://vc.example.com/?x=1' }), /without credentials, query/],
    [library({ vcenter: 'ftp://vc.example.com/' }), /https URL/],
    [library({ vcenter: 'http://vc.example.com/' }), /https unless it is on the loopback/],
    [library({ library: '' }), /library must be a name/],
    [library({ library: 'a/b' }), /library must be a name/],
    [library({ instantiate: 'yes' }), /instantiate must be true or false/],
    [library({ guestCheck: 'tools' }), /guestCheck must be "required" or "power-state", not "tools"/],
  ])('refuses %j', (raw, message) => {
    expect(() => parseTarget(raw)).toThrow(message);
  });

  it('allows plain http only to a vCenter on the loopback', () => {
    expect((parseTarget(library({ vcenter: 'http://127.0.0.1:8989' })) as ContentLibraryTarget).vcenter).toBe(
      'http://127.0.0.1:8989/',
    );
  });

  it.each([
    [undefined, false, 'absent'],
    [itemDescription('photon', '5.0.0', SHA, false), true, 'present'],
    [itemDescription('photon', '5.0.0', SHA, true), true, 'importing'],
    [itemDescription('photon', '5.0.0', OTHER, false), true, 'conflict'],
    [itemDescription('photon', '5.0.0', OTHER, true), true, 'conflict'],
    ['uploaded by hand', true, 'conflict'],
    [undefined, true, 'conflict'],
  ])('an item described %j (exists: %s) is %s', (description, exists, state) => {
    expect(itemState(description, SHA, exists)).toBe(state);
  });

  it('records image, version and SHA-256 in the description', () => {
    expect(itemDescription('photon', '5.0.0', SHA, false)).toBe(`vmhub image photon 5.0.0 sha256:${SHA}`);
  });

  it('makes `sddc add` options a target, without a login or TLS setting: those are the agent’s own', () => {
    expect(targetFromOptions('east-3', {})).toEqual({ kind: 'directory' });
    expect(targetFromOptions('east-3', { vcenter: 'https://vc3.example.com', instantiate: true })).toEqual({
      kind: 'content-library',
      vcenter: 'https://vc3.example.com/',
      library: 'vmhub',
      instantiate: true,
    });
    for (const [option, flag, instead] of [
      [{ insecureTls: true }, '--insecure-tls', /VMHUB_VCENTER_CA_FILE or VMHUB_VCENTER_THUMBPRINT/],
      [{ usernameEnv: 'VMHUB_VC_WEST_1_USERNAME' }, '--username-env', /VMHUB_VCENTER_USERNAME_FILE/],
      [{ passwordEnv: 'VMHUB_VC_WEST_1_PASSWORD' }, '--password-env', /VMHUB_VCENTER_PASSWORD_FILE/],
    ] as const) {
      for (const vcenter of [undefined, 'https://vc3.example.com']) {
        const refused = () => targetFromOptions('east-3', { vcenter, ...option });
        expect(refused).toThrow(`${flag} is no longer accepted`);
        expect(refused).toThrow(instead);
      }
    }
    expect(() => targetFromOptions('east-3', { datastore: 'ds1' })).toThrow(
      /content library options \(datastore\) need --vcenter/,
    );
  });

  it('keeps a gate guest check of power state only, and says so; required is the default and is not stored', () => {
    const relaxed = targetFromOptions('east-3', { vcenter: 'https://vc3.example.com', guestCheck: 'power-state' });
    expect(relaxed).toEqual({
      kind: 'content-library',
      vcenter: 'https://vc3.example.com/',
      library: 'vmhub',
      guestCheck: 'power-state',
    });
    expect(parseTarget(relaxed)).toEqual(relaxed);
    expect(describeTarget(relaxed)).toBe('content library vmhub on https://vc3.example.com/; gate guest check: power state only');
    expect(targetLabel(relaxed)).toBe('content library (guest check: power state)');
    const strict = targetFromOptions('east-3', { vcenter: 'https://vc3.example.com', guestCheck: 'required' });
    expect(strict).not.toHaveProperty('guestCheck');
    expect(describeTarget(strict)).toBe('content library vmhub on https://vc3.example.com/');
    expect(targetLabel(strict)).toBe('content library');
    expect(
      typedError('InvalidInput', () => targetFromOptions('east-3', { vcenter: 'https://vc3.example.com', guestCheck: 'none' }))
        .message,
    ).toMatch(/guestCheck must be "required" or "power-state"/);
    expect(() => targetFromOptions('east-3', { guestCheck: 'power-state' })).toThrow(/options \(guestCheck\) need --vcenter/);
  });

  it('reads the default SDDCs’ targets from the topology, and refuses a bad one as InvalidTopology', () => {
    const topology = (sddc: unknown) =>
      JSON.stringify({
        dataCenters: [{ id: 'dc-east' }],
        storage: [{ id: 'p', dataCenter: 'dc-east', role: 'primary', endpoint: 'http://127.0.0.1:1/a', container: 'vm-images' }],
        sddcs: [sddc],
      });
    const seed = { name: 'east-1', dataCenter: 'dc-east', capacity: { cpus: 1, memoryMiB: 1, diskGiB: 1 } };
    expect(parseTopology(topology(seed)).sddcs[0].target).toEqual({ kind: 'directory' });
    const withLibrary = parseTopology(topology({ ...seed, target: library({ vcenter: 'https://${VC:-127.0.0.1}:8989/' }) }), {});
    expect(withLibrary.sddcs[0].target).toMatchObject({ kind: 'content-library', vcenter: 'https://127.0.0.1:8989/' });
    expect(() => parseTopology(topology({ ...seed, target: { kind: 'tape' } }))).toThrow(
      expect.objectContaining({ type: 'InvalidTopology', message: expect.stringMatching(/SDDC east-1 target: kind/) }),
    );
  });
});
