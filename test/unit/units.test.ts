import { formatBytes, parseSize } from '../../src/units';

describe('sizes', () => {
  it.each([
    ['8GiB', 8 * 2 ** 30],
    ['8 GiB', 8 * 2 ** 30],
    ['512MiB', 512 * 2 ** 20],
    ['1.5T', 1.5 * 2 ** 40],
    ['4096', 4096],
    ['100gb', 100 * 2 ** 30],
  ])('parses %s', (text, bytes) => {
    expect(parseSize(text)).toBe(bytes);
  });

  it.each(['', 'lots', '8 parsecs', '-1GiB'])('rejects %j', (text) => {
    expect(() => parseSize(text)).toThrow(/not a size/);
  });

  it.each([
    [0, '0 B'],
    [1023, '1023 B'],
    [18022400, '17.2 MiB'],
    [1024 ** 4, '1.0 TiB'],
    [200 * 2 ** 30, '200 GiB'],
  ])('formats %d as %s', (bytes, text) => {
    expect(formatBytes(bytes)).toBe(text);
  });
});
