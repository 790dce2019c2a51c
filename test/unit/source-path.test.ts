import path from 'node:path';
import { resolveSourcePath } from '../../src/source/source-path';
import { typedError } from './typed-error';

const repo = '/srv/images';
const other = '/mnt/vendor';
const roots = [repo, other];

describe('a source path as an operator types it', () => {
  it.each([
    ['an absolute path under the first root', '/srv/images/demo/app.ova', '/home/op', 'demo/app.ova'],
    ['a cwd-relative path under the first root', 'images/demo/../raceA.iso', '/srv', 'raceA.iso'],
    ['a relative path from inside the root', 'app.ova', '/srv/images/demo', 'demo/app.ova'],
    ['a path under another root stays absolute', '../vendor/tools.iso', '/mnt/x', '/mnt/vendor/tools.iso'],
    ['an absolute path under another root', '/mnt/vendor/a/b.ova', '/', '/mnt/vendor/a/b.ova'],
    ['a repository-relative path typed elsewhere', 'demo/app.ova', '/home/op', 'demo/app.ova'],
    ['a URL is left to the workflow', 'https://images.example.com/a.ova', '/home/op', 'https://images.example.com/a.ova'],
  ])('%s', (_what, input, cwd, expected) => {
    expect(resolveSourcePath(input, roots, cwd)).toBe(expected);
  });

  it('accepts the .data/repository path of the default root from the project folder', () => {
    const project = '/work/vmhub';
    const root = path.join(project, '.data', 'repository');
    expect(resolveSourcePath('.data/repository/raceA.iso', [root], project)).toBe('raceA.iso');
    expect(resolveSourcePath('./.data/repository/sub/raceA.iso', [root], project)).toBe('sub/raceA.iso');
  });

  it.each([
    ['an absolute path outside every root', '/tmp/app.ova', '/home/op'],
    ['a relative path that climbs out of the root', '../../etc/passwd', '/home/op'],
    ['a root itself', '/srv/images', '/'],
    ['a name that only starts like a root', '/srv/images-old/app.ova', '/'],
  ])('refuses %s, naming the roots and how to add one', (_what, input, cwd) => {
    const { message } = typedError('InvalidSource', () => resolveSourcePath(input, roots, cwd));
    expect(message).toContain(path.resolve(cwd, input));
    expect(message).toContain('(/srv/images, /mnt/vendor)');
    expect(message).toContain('VMHUB_REPOSITORY_ROOTS');
  });

  it('advises only what is then accepted: a copy under a root, or the folder it names added as a root', () => {
    const { message } = typedError('InvalidSource', () => resolveSourcePath('/tmp/app.ova', roots, '/home/op'));
    expect(message).toContain('copy or move the file under one of them (a link there to a file outside them is refused)');
    const folder = /or add (\S+) to VMHUB_REPOSITORY_ROOTS/.exec(message)?.[1];
    expect(folder).toBe('/tmp');
    expect(resolveSourcePath('/tmp/app.ova', [...roots, folder!], '/home/op')).toBe('/tmp/app.ova');
    expect(resolveSourcePath('/srv/images/app.ova', roots, '/home/op')).toBe('app.ova');
  });

  it('a file named "..x" inside a root is inside it', () => {
    expect(resolveSourcePath('/srv/images/..x.ova', roots, '/')).toBe('..x.ova');
  });

  it('without roots, says which variable configures them', () => {
    expect(() => resolveSourcePath('a.ova', [], '/')).toThrow(/VMHUB_REPOSITORY_ROOTS/);
    expect(() => resolveSourcePath('  ', roots, '/')).toThrow(/source is empty/);
  });
});
