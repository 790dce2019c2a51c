import { validateDeployInput } from '../../src/shared/deploy-input';
import { closeNames, didYouMean } from '../../src/shared/did-you-mean';
import {
  describeSddcs,
  isLatestRef,
  validateImageName,
  validateSddcName,
  validateSddcNames,
  validateSddcSelection,
  validateVersion,
  validateVersionRef,
} from '../../src/shared/names';
import { validatePublishInput } from '../../src/shared/publish-input';
import { typedError } from './typed-error';

const message = (fn: () => unknown): string => typedError('InvalidInput', fn).message;

describe('versions', () => {
  it.each(['1.0.0', '1.3.0-rc.1', '9.1.0+25262073', '0.0.1-alpha.2+b7'])('accepts %s', (v) => {
    expect(validateVersion(v)).toBe(v);
  });

  it.each([
    ['v1.0.0', 'version "v1.0.0" has a leading "v": drop the v (1.0.0)'],
    ['1.0', 'version "1.0" needs three numbers, MAJOR.MINOR.PATCH (e.g. 1.0.0)'],
    ['2', 'version "2" needs three numbers, MAJOR.MINOR.PATCH (e.g. 2.0.0)'],
    ['9.1.0.0', 'version "9.1.0.0" has more than three numbers'],
    ['latest-ish', 'version "latest-ish" is not a semantic version MAJOR.MINOR.PATCH[-pre][+build] (e.g. 1.2.3 or 1.3.0-rc.1)'],
  ])('refuses %s in words that say how to fix it', (v, text) => {
    expect(message(() => validateVersion(v))).toContain(text);
  });

  it('names the field the caller knows', () => {
    expect(message(() => validateVersion('v2.0.0', '--version'))).toMatch(/^--version "v2.0.0" has a leading "v"/);
    expect(message(() => validateVersion(undefined, '--version'))).toBe(
      'no --version given and the image declares no semantic version; give one, e.g. --version 1.2.3',
    );
  });

  it('latest and latest-pre are references, accepted where a deploy names a version', () => {
    expect(isLatestRef('latest')).toBe(true);
    expect(isLatestRef('latest-pre')).toBe(true);
    expect(isLatestRef('1.0.0')).toBe(false);
    expect(validateVersionRef('latest-pre')).toBe('latest-pre');
    expect(validateVersionRef('1.2.3')).toBe('1.2.3');
    expect(message(() => validateVersionRef('newest'))).toContain('or latest, or latest-pre');
    expect(message(() => validateVersion('latest'))).toContain('"latest"');
  });
});

describe('names', () => {
  it('an image name in capitals is refused with the lower-case form and an example', () => {
    expect(validateImageName('ubuntu-app')).toBe('ubuntu-app');
    expect(message(() => validateImageName('Tools', '--image'))).toBe(
      `--image "Tools" is not an image name (try tools): use 1 to 63 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit, e.g. ubuntu-app`,
    );
    expect(message(() => validateImageName('-x'))).not.toContain('try');
    expect(message(() => validateImageName('a/b'))).not.toContain('^');
  });

  it('an SDDC name is checked alike, and a list names the SDDC given twice', () => {
    expect(validateSddcName('east-1')).toBe('east-1');
    expect(message(() => validateSddcName('East-1', '--to'))).toMatch(
      /^--to "East-1" is not an SDDC name \(try east-1\).*e\.g\. east-1$/,
    );
    expect(message(() => validateSddcName('east_1'))).not.toContain('try');
    expect(validateSddcNames(['a', 'b'])).toEqual(['a', 'b']);
    expect(message(() => validateSddcNames(['east-1', 'west-1', 'east-1'], '--to'))).toBe('--to lists SDDC east-1 twice');
    expect(message(() => validateSddcNames(['east-1', 'West'], '--to'))).toMatch(/^--to entry "West"/);
  });

  it('"all" stands for every SDDC: no SDDC may be called so, and it is never one name among others', () => {
    expect(message(() => validateSddcName('all'))).toMatch(
      /^SDDC name "all" is not an SDDC name: "all" stands for every registered SDDC/,
    );
    // The lower-case hint never suggests the reserved word.
    expect(message(() => validateSddcName('ALL'))).not.toContain('try');
    expect(message(() => validateSddcNames(['east-1', 'all'], '--to'))).toBe(
      '--to lists "all" among SDDC names: give "all" alone (every SDDC), or only names',
    );
    expect(validateSddcSelection('all', 'sddcs')).toBe('all');
    expect(validateSddcSelection(['east-1'], 'sddcs')).toEqual(['east-1']);
    expect(validateSddcSelection([], 'deployTo', true)).toEqual([]);
    expect(message(() => validateSddcSelection([], 'sddcs'))).toBe('sddcs must be "all" or a non-empty list of SDDC names');
    expect(message(() => validateSddcSelection('every', 'deployTo', true))).toBe(
      'deployTo must be "all" or a list of SDDC names',
    );
    expect(describeSddcs('all')).toBe('every SDDC');
    expect(describeSddcs(['a', 'b'])).toBe('a, b');
  });
});

describe('did you mean', () => {
  const images = ['ubuntu-app', 'ubuntu-base', 'photon', 'opstools', 'opsbox'];

  it.each([
    ['ubuntu-ap', ['ubuntu-app']],
    ['ubutnu-app', ['ubuntu-app']],
    ['opsbx', ['opsbox']],
    ['opstool', ['opstools']],
    ['ubuntu', []],
    ['windows', []],
    ['photon', []],
  ])('%s: %j', (name, close) => {
    expect(closeNames(name, images)).toEqual(close);
  });

  it('names one, or several closest first, and nothing when none is close', () => {
    expect(didYouMean('opsbx', images)).toBe(' (did you mean opsbox?)');
    expect(didYouMean('ops', ['opsa', 'opsb', 'opsc', 'opsd'])).toBe(' (did you mean opsa, opsb or opsc?)');
    expect(didYouMean('zzz', images)).toBe('');
    // Only the closest: a name two edits away is not named beside one a single edit away.
    expect(closeNames('strict-kep', ['strict-keep', 'strict-out', 'strict-pin', 'strict-kept'])).toEqual([
      'strict-keep',
      'strict-kept',
    ]);
  });
});

describe('workflow inputs use the same checks', () => {
  it('a deploy may name latest-pre; duplicates and bad names are refused by name', () => {
    expect(validateDeployInput({ image: 'a', version: 'latest-pre', sddcs: 'all' }).version).toBe('latest-pre');
    expect(message(() => validateDeployInput({ image: 'a', version: '1.0.0', sddcs: ['x', 'x'] }))).toBe(
      'sddcs lists SDDC x twice',
    );
    expect(message(() => validateDeployInput({ image: 'a', version: 'v1.0.0', sddcs: 'all' }))).toContain('drop the v');
  });

  it('a publish names the SDDC listed twice in deployTo, and may deploy to "all"', () => {
    expect(message(() => validatePublishInput({ source: 'a.ova', image: 'a', deployTo: ['y', 'y'] }))).toBe(
      'deployTo lists SDDC y twice',
    );
    expect(validatePublishInput({ source: 'a.ova', image: 'a', deployTo: 'all' }).deployTo).toBe('all');
    expect(message(() => validatePublishInput({ source: 'a.ova', image: 'a', deployTo: ['all', 'y'] }))).toMatch(
      /^deployTo lists "all" among SDDC names/,
    );
  });

  it('all or nothing is true or false, and a publish takes it only with deployTo', () => {
    expect(validateDeployInput({ image: 'a', version: '1.0.0', sddcs: 'all', allOrNothing: true }).allOrNothing).toBe(true);
    expect(message(() => validateDeployInput({ image: 'a', version: '1.0.0', sddcs: 'all', allOrNothing: 'yes' }))).toBe(
      'allOrNothing must be true or false',
    );
    expect(message(() => validatePublishInput({ source: 'a.ova', image: 'a', deployAllOrNothing: true }))).toBe(
      'deployAllOrNothing applies to a deploy: give deployTo with it',
    );
    expect(
      validatePublishInput({ source: 'a.ova', image: 'a', deployTo: ['y'], deployAllOrNothing: true }).deployAllOrNothing,
    ).toBe(true);
  });
});
