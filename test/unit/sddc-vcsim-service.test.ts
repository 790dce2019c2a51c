import fs from 'node:fs';
import path from 'node:path';
import { loadConfig } from '../../src/config';
import { plannedServices } from '../../src/dev-services/embedded';
import { tempDir } from '../images/build';

/** The embedded vcsims: one per loopback vCenter of the default SDDCs, none for anything else. */
describe('vcsim as an embedded service', () => {
  const dir = tempDir('vmhub-vcsim-');
  const target = (vcenter: string, name: string) => ({
    kind: 'content-library',
    vcenter,
    library: 'vmhub',
    usernameEnv: `VMHUB_VC_${name}_USER`,
    passwordEnv: `VMHUB_VC_${name}_PASS`,
  });
  const topology = path.join(dir, 'topology.json');
  fs.writeFileSync(
    topology,
    JSON.stringify({
      dataCenters: [{ id: 'dc-east' }],
      storage: [
        { id: 'p', dataCenter: 'dc-east', role: 'primary', endpoint: 'http://storage.example.com/a', container: 'vm-images' },
      ],
      sddcs: [
        {
          name: 'east-1',
          dataCenter: 'dc-east',
          capacity: { cpus: 1, memoryMiB: 1, diskGiB: 1 },
          target: target('https://127.0.0.1:${VC1_PORT:-8989}/', 'E1'),
        },
        // Shares east-1's vCenter: one vcsim serves both.
        {
          name: 'east-2',
          dataCenter: 'dc-east',
          capacity: { cpus: 1, memoryMiB: 1, diskGiB: 1 },
          target: target('https://127.0.0.1:8989/', 'E2'),
        },
        {
          name: 'east-3',
          dataCenter: 'dc-east',
          capacity: { cpus: 1, memoryMiB: 1, diskGiB: 1 },
          target: target('http://127.0.0.1:9000/', 'E3'),
        },
        {
          name: 'remote',
          dataCenter: 'dc-east',
          capacity: { cpus: 1, memoryMiB: 1, diskGiB: 1 },
          target: target('https://vc.example.com/', 'R'),
        },
        { name: 'plain', dataCenter: 'dc-east', capacity: { cpus: 1, memoryMiB: 1, diskGiB: 1 } },
      ],
    }),
  );
  const env = {
    VMHUB_DATA_DIR: dir,
    VMHUB_TOPOLOGY: topology,
    TEMPORAL_ADDRESS: 'temporal.example.com:7233',
    MONGODB_URI: 'mongodb://catalog.example.com/vmhub',
    VMHUB_VC_E3_USER: 'admin',
    VMHUB_VC_E3_PASS: 'not on the command line',
  };
  const specs = plannedServices(loadConfig(env), env)
    .map((make) => make())
    .filter((s) => s.name.startsWith('vcsim'));

  it('starts one per loopback vCenter, on its port, with its datastores in its own folder', () => {
    expect(specs.map((s) => [s.name, s.port, s.url])).toEqual([
      ['vcsim east-1', 8989, 'https://127.0.0.1:8989/'],
      ['vcsim east-3', 9000, 'http://127.0.0.1:9000/'],
    ]);
    expect(specs[0].args).toEqual(['-l', '127.0.0.1:8989', '-tls=true', '-E', '/dev/null']);
    expect(specs[0].env).toEqual({ TMPDIR: path.join(dir, 'vcsim', 'east-1') });
    expect(specs[0].dirs).toEqual([path.join(dir, 'vcsim', 'east-1')]);
  });

  it('takes the login the agents use, with the password in a private file rather than on the command line', () => {
    const file = path.join(dir, 'vcsim', 'east-3', '.password');
    expect(specs[1].args).toEqual([
      '-l',
      '127.0.0.1:9000',
      '-tls=false',
      '-E',
      '/dev/null',
      '-username',
      'admin',
      '-password',
      file,
    ]);
    expect(fs.readFileSync(file, 'utf8')).toBe('not on the command line');
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
  });
});
