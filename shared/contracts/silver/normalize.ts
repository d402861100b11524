/**
 * Value normalization shared by silver contracts: trimmed text with empty → null, ISO dates, numbers
 * from numeric strings, deterministic ids, JSON paths and drift examples. Pure functions, written for
 * the hot path (millions of records): they return their input unchanged when it is already clean.
 */
import { hash } from 'node:crypto';
import {
  ExactDecimal,
  holdsInexactNumber,
  outOfDoubleRange,
  stringifyExact,
  stringifyLossless,
} from '../exact-json.ts';

/** A string trimmed, with blank → null; anything else (number, object, absent) → null. */
export function text(value: unknown): string | null {
  if (typeof value !== 'string') return null;
  const trimmed = value.trim();
  return trimmed === '' ? null : trimmed;
}

/**
 * Like `text`, but finite numbers and booleans become their JSON spelling (header values, ids); an
 * integer beyond 2^53 (a `bigint` from `parseExact`) keeps its exact digits.
 */
export function scalarText(value: unknown): string | null {
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : null;
  if (typeof value === 'bigint') return String(value);
  if (typeof value === 'boolean') return String(value);
  return text(value);
}

/** An array of strings, each trimmed, blanks and non-strings dropped; not an array or nothing left → null. */
export function textArray(value: unknown): string[] | null {
  if (!Array.isArray(value) || value.length === 0) return null;
  let clean = true;
  for (const item of value) {
    if (typeof item !== 'string' || item === '' || item.trim() !== item) {
      clean = false;
      break;
    }
  }
  if (clean) return value as string[];
  const out: string[] = [];
  for (const item of value) {
    const t = text(item);
    if (t !== null) out.push(t);
  }
  return out.length > 0 ? out : null;
}

const NUMERIC = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

/**
 * Whether a string spells a number a DOUBLE holds (after trimming), e.g. "123.45", " 1e3 "; not "1e400"
 * (it would be stored as Infinity) nor "1e-400" (as 0): see `outOfDoubleRange`.
 */
export function isNumericString(value: unknown): value is string {
  if (typeof value !== 'string') return false;
  const trimmed = value.trim();
  return NUMERIC.test(trimmed) && !outOfDoubleRange(trimmed);
}

/** A finite number, or a numeric string converted (a `bigint` to its nearest double); anything else → null. */
export function toNumber(value: unknown): number | null {
  if (typeof value === 'number') return Number.isFinite(value) ? value : null;
  if (typeof value === 'bigint') return Number(value);
  if (isNumericString(value)) return Number(value.trim());
  return null;
}

/**
 * Whether a value is a number outside the double range: ±Infinity, from `1e400` in JSON, or an
 * `ExactDecimal` a double reads as 0 (`1e-400`).
 */
export function isOutOfRange(value: unknown): boolean {
  if (value instanceof ExactDecimal) return outOfDoubleRange(value.text);
  return typeof value === 'number' && !Number.isFinite(value) && !Number.isNaN(value);
}

/**
 * What is wrong with a number outside the double range (`isOutOfRange`, or numeric text that spells
 * one), as messages say it.
 */
export function outOfRangeReason(value: unknown): string {
  const belowRange =
    value instanceof ExactDecimal || (typeof value === 'string' && Number(value.trim()) === 0);
  return belowRange
    ? 'a nonzero number below the double range (±4.9e-324, e.g. 1e-400; a double holds it only as 0)'
    : 'a number beyond the double range (±1.8e308, e.g. 1e400)';
}

/** An array of integers (numeric strings converted), others dropped; not an array or nothing left → null. */
export function integerArray(value: unknown): number[] | null {
  if (!Array.isArray(value) || value.length === 0) return null;
  let clean = true;
  for (let i = 0; i < value.length && clean; i++) clean = Number.isSafeInteger(value[i]);
  if (clean) return value as number[];
  const out: number[] = [];
  for (const item of value) {
    const n = toNumber(item);
    if (n !== null && Number.isSafeInteger(n)) out.push(n);
  }
  return out.length > 0 ? out : null;
}

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

function validDate(y: number, m: number, d: number): boolean {
  if (m < 1 || m > 12 || d < 1) return false;
  const leap = m === 2 && y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0);
  return d <= DAYS_IN_MONTH[m - 1]! + (leap ? 1 : 0);
}

const pad = (n: number, width: number): string => String(n).padStart(width, '0');
const ymd = (y: number, m: number, d: number): string | null =>
  validDate(y, m, d) ? `${pad(y, 4)}-${pad(m, 2)}-${pad(d, 2)}` : null;

const ISO_DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
/** A timestamp's date, when a real time of day follows it: `2024-12-31T25:00` is no date of 2024-12-31. */
const ISO_TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2})[T ](?:[01]\d|2[0-3]):[0-5]\d/;
const YEAR_FIRST = /^(\d{4})[/.](\d{1,2})[/.](\d{1,2})$/;
const YEAR_LAST = /^(\d{1,2})[/-](\d{1,2})[/-](\d{4})$/;
const COMPACT = /^(\d{4})(\d{2})(\d{2})$/;

/**
 * Whether a value is a real calendar date spelled `YYYY-MM-DD` (the only spelling the CMS schemas allow).
 * Read digit by digit, not by a regex: it runs for millions of prices, and a match allocates.
 */
export function isIsoDate(value: unknown): boolean {
  if (typeof value !== 'string' || value.length !== 10) return false;
  if (value.charCodeAt(4) !== DASH || value.charCodeAt(7) !== DASH) return false;
  const y = digitsAt(value, 0, 4);
  const m = digitsAt(value, 5, 7);
  const d = digitsAt(value, 8, 10);
  return y >= 0 && m >= 0 && d >= 0 && validDate(y, m, d);
}

const DASH = 0x2d;
const ZERO = 0x30;

/** The number the ASCII digits `[from, to)` of `s` spell, or -1 when one is not a digit. */
function digitsAt(s: string, from: number, to: number): number {
  let n = 0;
  for (let i = from; i < to; i++) {
    const digit = s.charCodeAt(i) - ZERO;
    if (digit < 0 || digit > 9) return -1;
    n = n * 10 + digit;
  }
  return n;
}

/**
 * A date as ISO `YYYY-MM-DD`, from `YYYY-MM-DD`, an ISO timestamp (date part), `YYYY/MM/DD`,
 * `MM/DD/YYYY` (US order, as US payers write it) or `YYYYMMDD`; not a real date → null.
 */
export function parseDate(value: unknown): string | null {
  if (typeof value !== 'string') return null;
  if (isIsoDate(value)) return value; // the common case: no allocation
  const s = value.trim();
  let m = ISO_DATE.exec(s) ?? ISO_TIMESTAMP.exec(s) ?? YEAR_FIRST.exec(s) ?? COMPACT.exec(s);
  if (m) return ymd(Number(m[1]), Number(m[2]), Number(m[3]));
  m = YEAR_LAST.exec(s);
  return m ? ymd(Number(m[3]), Number(m[1]), Number(m[2])) : null;
}

/**
 * A deterministic id: `prefix` + the first `hexChars` hex digits of sha256 over `parts` (joined by a
 * unit separator, so ("ab", "c") and ("a", "bc") differ). Same parts, same id, on every rerun.
 */
export function stableId(prefix: string, parts: readonly (string | number)[], hexChars = 16): string {
  // One-shot `hash`: a third of `createHash`'s cost (inline provider groups take one id each).
  return prefix + hash('sha256', parts.join('\u001f'), 'hex').slice(0, hexChars);
}

const PLAIN_KEY = /^[^.[\]"]+$/;

/** A JSON path as rules and drift report it: `negotiated_rates[0].negotiated_prices[2].negotiated_rate`. */
export function jsonPath(segments: readonly PropertyKey[], from = 0, to = segments.length): string {
  let out = '';
  for (let i = from; i < to; i++) {
    const seg = segments[i];
    if (typeof seg === 'number') out += `[${seg}]`;
    else {
      const key = String(seg);
      out += PLAIN_KEY.test(key) ? (out === '' ? key : `.${key}`) : `[${JSON.stringify(key)}]`;
    }
  }
  return out;
}

/** The value at `segments` inside `root`, or undefined. */
export function valueAt(root: unknown, segments: readonly PropertyKey[]): unknown {
  let node = root;
  for (const seg of segments) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<PropertyKey, unknown>)[seg];
  }
  return node;
}

/** Longest drift example kept, in characters. */
export const EXAMPLE_MAX_CHARS = 200;

/**
 * A value as a drift example: its JSON text (exact digits of a `bigint`; a number beyond the double range
 * as `Infinity`, not JSON's `null`), cut to `EXAMPLE_MAX_CHARS`.
 */
export function example(value: unknown, maxChars = EXAMPLE_MAX_CHARS): string {
  // An ExactDecimal as written: its nearest double would show another number than the source's.
  const json =
    value === undefined || isOutOfRange(value) || value instanceof ExactDecimal
      ? String(value)
      : (valueText(value) ?? String(value));
  return json.length > maxChars ? json.slice(0, maxChars) : json;
}

/**
 * Values rescued from drift (unknown fields, mistyped optional values), grouped by the JSON path of
 * the object they sit in; each group maps the value's own path in the record to the value.
 */
export type RescuedValues = ReadonlyMap<string, Readonly<Record<string, unknown>>>;

/**
 * A `_rescued` column: the values rescued in the objects at `objectPaths` (a row's own object, plus
 * enclosing objects without a row of their own), as one JSON object keyed by path in the record; or null.
 */
export function rescuedJson(rescued: RescuedValues, ...objectPaths: string[]): string | null {
  if (rescued.size === 0) return null;
  let merged: Record<string, unknown> | undefined;
  for (const path of objectPaths) {
    const bag = rescued.get(path);
    if (bag) merged = merged ? { ...merged, ...bag } : bag;
  }
  return merged ? (valueText(merged) ?? null) : null;
}

/**
 * A value's JSON text, exact and at any depth: integers beyond 2^53 with their digits (`stringifyExact`),
 * and values nested deeper than V8's JSON.stringify can go written without recursion (`jsonText`).
 */
export function valueText(value: unknown): string | undefined {
  try {
    // Rare (drift values only): 1e400 and 1e-400 as written, not as JSON's null and 0.
    if (holdsInexactNumber(value)) return stringifyLossless(value);
    return stringifyExact(value);
  } catch (error) {
    if (!(error instanceof RangeError)) throw error;
    return jsonTextIterative(value);
  }
}

/**
 * `JSON.stringify` of a value JSON.parse built, at any depth. V8's JSON.stringify recurses and throws
 * "Maximum call stack size exceeded" near 4,000 levels of nesting (fewer inside a deep call stack), while
 * the scanner accepts up to `limits.maxDepth` (at most 100,000): a value it cannot write is written
 * again with an explicit stack. The fast native path stays the common one.
 */
export function jsonText(value: unknown): string | undefined {
  try {
    return JSON.stringify(value);
  } catch (error) {
    if (!(error instanceof RangeError)) throw error;
  }
  return jsonTextIterative(value);
}

interface JsonFrame {
  readonly container: object;
  /** The keys of an object; null for an array. */
  readonly keys: readonly string[] | null;
  next: number;
  written: number;
}

/** What `JSON.stringify` writes for plain data (objects, arrays, strings, numbers, booleans, null), without recursion. */
export function jsonTextIterative(value: unknown): string | undefined {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  const out: string[] = [];
  const stack: JsonFrame[] = [];
  const open = (container: object) => {
    const array = Array.isArray(container);
    out.push(array ? '[' : '{');
    stack.push({ container, keys: array ? null : Object.keys(container), next: 0, written: 0 });
  };
  open(value);
  while (stack.length > 0) {
    const frame = stack.at(-1)!;
    const { keys } = frame;
    const length = keys === null ? (frame.container as unknown[]).length : keys.length;
    if (frame.next === length) {
      out.push(keys === null ? ']' : '}');
      stack.pop();
      continue;
    }
    const i = frame.next++;
    const key = keys === null ? undefined : keys[i]!;
    const item =
      key === undefined
        ? (frame.container as unknown[])[i]
        : (frame.container as Record<string, unknown>)[key];
    const nested = item !== null && typeof item === 'object';
    // As JSON.stringify: an unrepresentable member (undefined, a function) is left out of an object
    // and written as null in an array.
    const text = nested ? '' : JSON.stringify(item);
    if (text === undefined && key !== undefined) continue;
    if (frame.written++ > 0) out.push(',');
    if (key !== undefined) out.push(JSON.stringify(key), ':');
    if (nested) open(item);
    else out.push(text ?? 'null');
  }
  return out.join('');
}
