import fs from 'node:fs';
import path from 'node:path';
import { loadConfig } from '../../src/config';
import { plannedServices } from '../../src/dev-services/embedded';
import { agentVcenterEnv } from '../../src/dev-services/vcsim';
import { tempDir } from '../images/build';

/** The embedded vcsims: one per loopback vCenter of the default SDDCs, none for anything else. */
describe('vcsim as an embedded service', () => {
  const dir = tempDir('vmhub-vcsim-');
  const target = (vcenter: string) => ({ kind: 'content-library', vcenter, library: 'vmhub' });
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
          target: target('https://127.0.0.1:${VC1_PORT:-8989}/'),
        },
        // Shares east-1's vCenter: one vcsim serves both.
        {
          name: 'east-2',
          dataCenter: 'dc-east',
          capacity: { cpus: 1, memoryMiB: 1, diskGiB: 1 },
          target: target('https://127.0.0.1:8989/'),
        },
        {
          name: 'east-3',
          dataCenter: 'dc-east',
          capacity: { cpus: 1, memoryMiB: 1, diskGiB: 1 },
          target: target('http://127.0.0.1:9000/'),
        },
        {
          name: 'remote',
          dataCenter: 'dc-east',
          capacity: { cpus: 1, memoryMiB: 1, diskGiB: 1 },
          target: target('https://vc.example.com/'),
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
    VMHUB_VC_EAST_3_USERNAME: 'admin',
    VMHUB_VC_EAST_3_PASSWORD: 'not on the command line',
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

  it('takes the login from the services’ environment, both in private files rather than on the command line', () => {
    const files = {
      username: path.join(dir, 'vcsim', 'east-3', '.username'),
      password: path.join(dir, 'vcsim', 'east-3', '.password'),
    };
    expect(specs[1].args).toEqual([
      '-l',
      '127.0.0.1:9000',
      '-tls=false',
      '-E',
      '/dev/null',
      '-username',
      files.username,
      '-password',
      files.password,
    ]);
    expect(specs[1].args.join(' ')).not.toMatch(/admin|not on the command line/);
    expect(fs.readFileSync(files.username, 'utf8')).toBe('admin');
    expect(fs.readFileSync(files.password, 'utf8')).toBe('not on the command line');
    for (const file of Object.values(files)) expect(fs.statSync(file).mode & 0o777).toBe(0o600);
  });

  it('gives each default SDDC’s agent its own vcsim: the URL, no certificate check on the loopback, the login files', () => {
    const config = loadConfig(env);
    expect(agentVcenterEnv(config, 'east-1', env)).toEqual({
      VMHUB_VCENTER_URL: 'https://127.0.0.1:8989/',
      VMHUB_VCENTER_INSECURE_TLS: '1',
    });
    // east-2 shares east-1's vcsim.
    expect(agentVcenterEnv(config, 'east-2', env)).toEqual(agentVcenterEnv(config, 'east-1', env));
    expect(agentVcenterEnv(config, 'east-3', env)).toEqual({
      VMHUB_VCENTER_URL: 'http://127.0.0.1:9000/',
      VMHUB_VCENTER_USERNAME_FILE: path.join(dir, 'vcsim', 'east-3', '.username'),
      VMHUB_VCENTER_PASSWORD_FILE: path.join(dir, 'vcsim', 'east-3', '.password'),
    });
    // Not a vcsim of the services: its agent needs its own configuration.
    expect(agentVcenterEnv(config, 'remote', env)).toEqual({});
    expect(agentVcenterEnv(config, 'plain', env)).toEqual({});
  });
});
