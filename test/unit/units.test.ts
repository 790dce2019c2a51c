import {
  formatBytes,
  formatCapacity,
  parseCapacity,
  parseCpus,
  parseDiskGiB,
  parseFits,
  parseMemoryMiB,
  parseSize,
} from '../../src/shared/units';
import { typedError } from './typed-error';

const GiB = 2 ** 30;
const MiB = 2 ** 20;

describe('sizes', () => {
  it.each([
    ['8GiB', 8 * GiB],
    ['8 GiB', 8 * GiB],
    ['512MiB', 512 * MiB],
    ['512 MiB', 512 * MiB],
    ['2T', 2 * 2 ** 40],
    ['1.5T', 1.5 * 2 ** 40],
    ['100gb', 100 * GiB],
    ['4096B', 4096],
    ['.5G', 0.5 * GiB],
    ['256', 256 * GiB],
  ])('parses %s', (text, bytes) => {
    expect(parseSize(text)).toBe(bytes);
  });

  it.each([
    ['', 'is not a size'],
    ['lots', 'is not a size'],
    ['8 parsecs', 'has an unknown unit "parsecs"'],
    ['-1GiB', 'must be more than zero'],
    ['0', 'must be more than zero'],
    ['1e3', 'is not a size'],
  ])('rejects %j: %s', (text, why) => {
    const err = typedError('InvalidInput', () => parseSize(text, '--memory'));
    expect(err.message).toContain(`--memory ${JSON.stringify(text)} ${why}`);
    // The accepted forms and an example are in every message.
    expect(err.message).toContain('a plain number of GiB');
    expect(err.message).toContain('e.g. --memory 256GiB');
  });

  it('memory is kept in whole MiB and disk in whole GiB; a plain number is GiB', () => {
    expect(parseMemoryMiB('256')).toBe(256 * 1024);
    expect(parseMemoryMiB('512 MiB')).toBe(512);
    expect(parseMemoryMiB('1.5GiB')).toBe(1536);
    expect(parseDiskGiB('2T')).toBe(2048);
    expect(parseDiskGiB('100')).toBe(100);
    expect(typedError('InvalidInput', () => parseMemoryMiB('512KiB')).message).toBe(
      '--memory "512KiB" is less than 1 MiB, e.g. --memory 256GiB',
    );
    expect(typedError('InvalidInput', () => parseDiskGiB('100MiB')).message).toBe(
      '--disk "100MiB" is less than 1 GiB, e.g. --disk 4TiB',
    );
  });

  it.each([
    [0, '0 B'],
    [1023, '1023 B'],
    [18022400, '17.2 MiB'],
    [1024 ** 4, '1.0 TiB'],
    [200 * GiB, '200 GiB'],
  ])('formats %d as %s', (bytes, text) => {
    expect(formatBytes(bytes)).toBe(text);
  });

  it('formats a capacity in the units people read', () => {
    expect(formatCapacity({ cpus: 64, memoryMiB: 524288, diskGiB: 4096 })).toBe('64 CPUs, 512 GiB memory, 4.0 TiB disk');
    expect(formatCapacity({ cpus: 1, memoryMiB: 512, diskGiB: 20 })).toBe('1 CPU, 512 MiB memory, 20.0 GiB disk');
  });
});

describe('CPU counts', () => {
  it.each([
    ['16', 16],
    [' 4 ', 4],
  ])('parses %j', (text, n) => {
    expect(parseCpus(text)).toBe(n);
  });

  it.each([
    ['-4', 'must be a whole number of CPUs above zero'],
    ['0', 'must be a whole number of CPUs above zero'],
    ['2.5', 'must be a whole number of CPUs above zero'],
    ['lots', 'is not a number: give a whole number of CPUs'],
    ['', 'is not a number: give a whole number of CPUs'],
    ['4 cores', 'is not a number: give a whole number of CPUs'],
  ])('rejects %j', (text, why) => {
    expect(typedError('InvalidInput', () => parseCpus(text)).message).toContain(
      `--cpus ${JSON.stringify(text)} ${why}, e.g. --cpus 16`,
    );
  });
});

describe('SDDC capacity options', () => {
  it('parses only the fields given', () => {
    expect(parseCapacity({ cpus: '16' })).toEqual({ cpus: 16 });
    expect(parseCapacity({ memory: '256', disk: '2T' })).toEqual({ memoryMiB: 256 * 1024, diskGiB: 2048 });
    expect(parseCapacity({})).toEqual({});
  });

  it('names the option that is wrong', () => {
    expect(typedError('InvalidInput', () => parseCapacity({ cpus: '8', memory: 'lots' })).message).toMatch(
      /^--memory "lots" is not a size/,
    );
    expect(typedError('InvalidInput', () => parseCapacity({ disk: '-1T' })).message).toMatch(
      /^--disk "-1T" must be more than zero.*e\.g\. --disk 4TiB$/,
    );
  });
});

describe('--fits', () => {
  it('parses any subset of cpus, memory and disk', () => {
    expect(parseFits('cpus=4,memory=8GiB,disk=100GiB')).toEqual({ cpus: 4, memoryMiB: 8192, diskBytes: 100 * GiB });
    expect(parseFits('memory=512MiB')).toEqual({ memoryMiB: 512 });
    expect(parseFits(' cpus = 64 , disk=1T ')).toEqual({ cpus: 64, diskBytes: 2 ** 40 });
    expect(parseFits('memory=16')).toEqual({ memoryMiB: 16 * 1024 });
  });

  it.each([
    ['', 'names no requirement'],
    ['cpus', '"cpus" is not key=value'],
    ['=4', '"=4" is not key=value'],
    ['gpus=1', 'it knows cpus, memory and disk, not "gpus"'],
    ['cpus=4,cpus=8', 'cpus is given twice'],
  ])('rejects %j', (text, why) => {
    const err = typedError('InvalidInput', () => parseFits(text));
    expect(err.message).toContain(why);
    expect(err.message).toContain('e.g. --fits cpus=4,memory=8GiB,disk=100GiB');
  });

  it('names the key whose value is wrong, written as on the command line', () => {
    expect(typedError('InvalidInput', () => parseFits('cpus=2.5')).message).toBe(
      '--fits cpus="2.5" must be a whole number of CPUs above zero, e.g. --fits cpus=16',
    );
    expect(typedError('InvalidInput', () => parseFits('memory=lots')).message).toMatch(
      /^--fits memory="lots" is not a size: .* e\.g\. --fits memory=256GiB$/,
    );
  });
});
