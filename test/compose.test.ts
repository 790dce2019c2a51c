import { execFileSync } from 'node:child_process';
import path from 'node:path';

describe('docker-compose.yml', () => {
  it('is valid for docker-compose, offline', () => {
    const out = execFileSync('docker-compose', ['-f', 'docker-compose.yml', 'config', '--services'], {
      cwd: path.resolve(__dirname, '..'),
      encoding: 'utf8',
    });
    expect(out.trim().split('\n').sort()).toEqual(
      ['agent-east-1', 'agent-east-2', 'agent-west-1', 'azurite-east', 'azurite-west', 'mongodb', 'temporal', 'worker'].sort(),
    );
  });
});
