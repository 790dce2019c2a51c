import { VmhubError } from './errors';

/**
 * The one parser for dates and times an operator gives: ISO 8601 in its extended form only, a calendar
 * date (`2027-01-31`, midnight UTC) or a date and time with its zone (`2027-01-31T12:00:00Z`,
 * `2027-01-31T12:00+02:00`, fractions of a second allowed). A time without a zone is refused: it would
 * mean the clock of whichever machine read it. Every field is checked against the calendar, so
 * `2026-02-30` is refused instead of rolling over into March as `new Date` does. Plain code: the
 * workflow bundle may import it.
 */
const ISO_DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(?:(Z)|([+-])(\d{2}):(\d{2}))?)?$/;

const EXAMPLES = 'e.g. 2027-01-31, 2027-01-31T12:00:00Z or 2027-01-31T12:00:00+02:00';

const MONTHS = [
  'January',
  'February',
  'March',
  'April',
  'May',
  'June',
  'July',
  'August',
  'September',
  'October',
  'November',
  'December',
];

function daysIn(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

/** Why the fields of a well-formed text name no instant, or undefined when they do. */
function calendarProblem(f: number[], zoneGiven: boolean, timeGiven: boolean): string | undefined {
  const [year, month, day, hour, minute, second, offsetHours, offsetMinutes] = f;
  if (month < 1 || month > 12) return `there is no month ${month}`;
  if (day < 1 || day > daysIn(year, month)) return `${MONTHS[month - 1]} ${year} has ${daysIn(year, month)} days`;
  if (hour > 23) return `there is no hour ${hour} (00 to 23)`;
  if (minute > 59) return `there is no minute ${minute} (00 to 59)`;
  if (second > 59) return `there is no second ${second} (00 to 59)`;
  if (timeGiven && !zoneGiven) return 'a time needs its zone: Z for UTC, or an offset such as +02:00';
  if (offsetHours > 14 || offsetMinutes > 59 || (offsetHours === 14 && offsetMinutes > 0))
    return 'a zone offset lies between -14:00 and +14:00';
  return undefined;
}

/** An ISO 8601 date, or date and time with a zone; anything else is InvalidInput naming `field`. */
export function parseIsoDateTime(text: string, field: string): Date {
  const m = ISO_DATE_TIME.exec(text);
  const refuse = (why: string): never => {
    throw new VmhubError(
      'InvalidInput',
      `${field} "${text}" is not a date: ${why}; give an ISO 8601 date or date and time, ${EXAMPLES}`,
    );
  };
  if (!m) return refuse('it is not of the form YYYY-MM-DD[THH:MM[:SS[.fff]](Z|±HH:MM)]');
  const [, y, mo, d, h, mi, s, frac, z, sign, oh, om] = m;
  const fields = [y, mo, d, h, mi, s, oh, om].map((v) => Number(v ?? 0));
  const problem = calendarProblem(fields, z !== undefined || sign !== undefined, h !== undefined);
  if (problem) return refuse(problem);
  const [year, month, day, hour, minute, second, offsetHours, offsetMinutes] = fields;
  const millis = frac === undefined ? 0 : Math.floor(Number(`0.${frac}`) * 1000);
  const offset = (sign === '-' ? -1 : 1) * (offsetHours * 60 + offsetMinutes);
  // setUTCFullYear, not Date.UTC, which maps the years 0 to 99 onto 1900 to 1999.
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day);
  date.setUTCHours(hour, minute - offset, second, millis);
  return date;
}
