import { printable } from '../../src/cli/output';

describe('printable', () => {
  it.each([
    ['plain text stays', 'Photon OS 5.0 — VMware', 'Photon OS 5.0 — VMware'],
    ['an escape sequence is defused', 'evil\u001b[2J\u001b]0;owned\u0007', 'evil?[2J?]0;owned?'],
    ['a newline cannot forge a second line', 'name\nsha256   0000', 'name?sha256   0000'],
    ['C1 controls too', 'a\u009bb', 'a?b'],
  ])('%s', (_name, input, expected) => {
    expect(printable(input)).toBe(expected);
  });
});
