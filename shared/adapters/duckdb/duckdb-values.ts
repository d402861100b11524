/**
 * JavaScript values to DuckDB values for the silver writer, checked: a value that does not fit its
 * column throws `TypeMismatch` saying what was expected (the writer names the table and column).
 */
import { DuckDBDateValue, DuckDBListValue, DuckDBTimestampValue, type DuckDBValue } from '@duckdb/node-api';

/** Thrown by a converter; the writer turns it into an `InvalidRowError` naming the table and column. */
export class TypeMismatch extends Error {}

export const toVarchar = (value: unknown): string => {
  if (typeof value === 'string') return value;
  throw new TypeMismatch('expects a string');
};

const MIN_INT64 = -(2n ** 63n);
const MAX_INT64 = 2n ** 63n - 1n;

export const toBigInt = (value: unknown): bigint => {
  if (typeof value === 'number') {
    if (Number.isSafeInteger(value)) return BigInt(value);
    throw new TypeMismatch(
      Number.isInteger(value)
        ? 'expects an integer; numbers beyond ±2^53 lose precision, pass a bigint'
        : 'expects an integer',
    );
  }
  if (typeof value === 'bigint') {
    if (value >= MIN_INT64 && value <= MAX_INT64) return value;
    throw new TypeMismatch('expects a 64-bit integer');
  }
  throw new TypeMismatch('expects an integer (number or bigint)');
};

export const toDouble = (value: unknown): number => {
  if (typeof value === 'number') return value;
  throw new TypeMismatch('expects a number');
};

export const toBoolean = (value: unknown): boolean => {
  if (typeof value === 'boolean') return value;
  throw new TypeMismatch('expects a boolean');
};

const DATE_TEXT = /^(\d{4})-(\d{2})-(\d{2})$/;

/**
 * The last date converted: a column's dates repeat (a file's prices share a few expiration dates), and a
 * regex match per value was ~4 % of a silver worker's allocations. Date values are never mutated.
 */
let lastDate: { readonly text: string; readonly value: DuckDBDateValue } | undefined;

export const toDate = (value: unknown): DuckDBDateValue => {
  if (lastDate !== undefined && value === lastDate.text) return lastDate.value;
  const match = typeof value === 'string' ? DATE_TEXT.exec(value) : null;
  const days = match ? epochDays(Number(match[1]), Number(match[2]), Number(match[3])) : undefined;
  if (days === undefined) throw new TypeMismatch('expects a date as YYYY-MM-DD text');
  const date = new DuckDBDateValue(days);
  lastDate = { text: value as string, value: date };
  return date;
};

/** `YYYY-MM-DD`, then optionally `T` or space, `HH:MM[:SS[.fraction]]` and `Z` or `±HH[:MM]`. */
const TIMESTAMP_TEXT =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}(?::?\d{2})?)?)?$/;

/** ISO text to microseconds since the epoch, in UTC; digits beyond the microsecond are dropped. */
export const toTimestamp = (value: unknown): DuckDBTimestampValue => {
  const match = typeof value === 'string' ? TIMESTAMP_TEXT.exec(value) : null;
  const days = match ? epochDays(Number(match[1]), Number(match[2]), Number(match[3])) : undefined;
  if (match === null || days === undefined) throw new TypeMismatch('expects an ISO 8601 timestamp text');
  const [hours, minutes, seconds] = [match[4], match[5], match[6]].map((part) => Number(part ?? 0)) as [
    number,
    number,
    number,
  ];
  if (hours > 23 || minutes > 59 || seconds > 59)
    throw new TypeMismatch('expects an ISO 8601 timestamp text');
  const zone = match[8];
  let offsetMinutes = 0;
  if (zone !== undefined && zone !== 'Z') {
    const digits = zone.slice(1).replace(':', '');
    offsetMinutes =
      (zone[0] === '-' ? -1 : 1) * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2) || 0));
  }
  const wholeSeconds = days * 86_400 + hours * 3600 + (minutes - offsetMinutes) * 60 + seconds;
  const micros = Number((match[7] ?? '').padEnd(6, '0').slice(0, 6));
  return new DuckDBTimestampValue(BigInt(wholeSeconds) * 1_000_000n + BigInt(micros));
};

export const listOf =
  (item: (value: unknown) => DuckDBValue) =>
  (value: unknown): DuckDBListValue => {
    if (!Array.isArray(value)) throw new TypeMismatch('expects an array');
    const items = new Array<DuckDBValue>(value.length);
    for (let i = 0; i < value.length; i++) {
      const element: unknown = value[i];
      try {
        items[i] = element === null || element === undefined ? null : item(element);
      } catch (error) {
        if (error instanceof TypeMismatch) throw new TypeMismatch(`element [${i}] ${error.message}`);
        throw error;
      }
    }
    return new DuckDBListValue(items);
  };

/** Days since 1970-01-01 of a proleptic Gregorian date, or undefined if there is no such date. */
function epochDays(year: number, month: number, day: number): number | undefined {
  if (month < 1 || month > 12 || day < 1) return undefined;
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  const monthDays = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]!;
  if (day > monthDays) return undefined;
  // Howard Hinnant's days_from_civil.
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yearOfEra = y - era * 400;
  const dayOfYear = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1;
  const dayOfEra = yearOfEra * 365 + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100) + dayOfYear;
  return era * 146_097 + dayOfEra - 719_468;
}
