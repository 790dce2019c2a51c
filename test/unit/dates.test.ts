import { parseIsoDateTime } from '../../src/shared/dates';
import { typedError } from './typed-error';

describe('parseIsoDateTime: ISO 8601 only, checked against the calendar', () => {
  it.each([
    ['2027-01-31', '2027-01-31T00:00:00.000Z'],
    ['2028-02-29', '2028-02-29T00:00:00.000Z'],
    ['2000-02-29', '2000-02-29T00:00:00.000Z'],
    ['2027-01-31T12:00Z', '2027-01-31T12:00:00.000Z'],
    ['2027-01-31T12:00:00Z', '2027-01-31T12:00:00.000Z'],
    ['2027-01-31T12:00:00.5Z', '2027-01-31T12:00:00.500Z'],
    ['2027-01-31T12:00:00.123456789Z', '2027-01-31T12:00:00.123Z'],
    ['2027-01-31T12:00:00+02:00', '2027-01-31T10:00:00.000Z'],
    ['2027-01-01T01:30:00+02:00', '2026-12-31T23:30:00.000Z'],
    ['2027-01-31T23:00:00-05:30', '2027-02-01T04:30:00.000Z'],
    ['0050-06-01', '0050-06-01T00:00:00.000Z'],
  ])('reads %s as %s', (text, iso) => {
    expect(parseIsoDateTime(text, '--end-of-life').toISOString()).toBe(iso);
  });

  it.each([
    ['2026-02-30', 'February 2026 has 28 days'],
    ['2027-02-29', 'February 2027 has 28 days'],
    ['1900-02-29', 'February 1900 has 28 days'],
    ['2027-04-31', 'April 2027 has 30 days'],
    ['2027-13-01', 'there is no month 13'],
    ['2027-00-10', 'there is no month 0'],
    ['2027-01-00', 'January 2027 has 31 days'],
    ['2027-01-31T24:00:00Z', 'there is no hour 24'],
    ['2027-01-31T12:60:00Z', 'there is no minute 60'],
    ['2027-01-31T12:00:60Z', 'there is no second 60'],
    ['2027-01-31T12:00:00', 'a time needs its zone'],
    ['2027-01-31T12:00:00+15:00', 'a zone offset lies between -14:00 and +14:00'],
    ['2027-01-31T12:00:00+02:60', 'a zone offset lies between'],
    ['tomorrow', 'it is not of the form YYYY-MM-DD'],
    ['31/01/2027', 'it is not of the form YYYY-MM-DD'],
    ['2027-1-31', 'it is not of the form YYYY-MM-DD'],
    ['20270131', 'it is not of the form YYYY-MM-DD'],
    ['2027-01-31 12:00:00Z', 'it is not of the form YYYY-MM-DD'],
    ['2027-01-31T12:00:00z', 'it is not of the form YYYY-MM-DD'],
    ['Jan 31 2027', 'it is not of the form YYYY-MM-DD'],
    ['', 'it is not of the form YYYY-MM-DD'],
  ])('refuses %j: %s', (text, why) => {
    const { message } = typedError('InvalidInput', () => parseIsoDateTime(text, '--end-of-life'));
    expect(message).toContain(`--end-of-life "${text}" is not a date: ${why}`);
    expect(message).toMatch(/e\.g\. 2027-01-31, 2027-01-31T12:00:00Z or 2027-01-31T12:00:00\+02:00$/);
  });

  it('accepts every example its refusal gives', () => {
    const { message } = typedError('InvalidInput', () => parseIsoDateTime('2026-02-30', 'date'));
    const examples = message.slice(message.indexOf('e.g. ') + 5).split(/, | or /);
    expect(examples).toHaveLength(3);
    for (const e of examples) expect(parseIsoDateTime(e, 'date')).toBeInstanceOf(Date);
  });
});
