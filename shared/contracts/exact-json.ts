/**
 * JSON without silent changes of numbers. `JSON.parse` turns an integer beyond ±2^53 into the nearest
 * double (`9007199254740993` → `…992`), so an id or key written as a JSON number could change and merge
 * with another. Here such an integer becomes a `bigint` with its exact digits, and `stringifyExact`
 * writes it back as those digits. Every other value is what `JSON.parse` gives (a decimal is a double;
 * a number beyond the double range is ±Infinity, for the contracts to refuse with its path).
 *
 * The exact parse (lossless-json, pure JavaScript) is several times slower than `JSON.parse`, so it is
 * only taken when the text has a run of 16 or more digits — the only way to spell an unsafe integer.
 * Ordinary records never have one and pay for a quick look at every 16th character.
 */
import { parse as losslessParse, stringify as losslessStringify } from 'lossless-json';

/** The shortest integer beyond 2^53 (9007199254740993) has 16 digits: no shorter run needs the exact parse. */
const UNSAFE_DIGITS = 16;
const ZERO = 0x30;
const NINE = 0x39;
const DOT = 0x2e;
const BACKSLASH_U = '\\u';

const isDigit = (code: number): boolean => code >= ZERO && code <= NINE;

/**
 * Whether `text` (from `from` on) has a run of 16 digits: the only way to spell an integer a double
 * cannot hold. Any 16 consecutive characters hold exactly one of the probed positions (every 16th), so
 * a run is never missed while most characters are never read: ~1 GB/s on TiC records, where
 * `/\d{16}/` ran at ~140 MB/s (it tries a match at every digit of every NPI).
 */
export function mayHoldUnsafeInteger(text: string, from = 0): boolean {
  return hasLongRun(text, from, false);
}

/**
 * Whether `text` (from `from` on) has a run of 16 digits (and, with `dots`, dots): one probe every 16th
 * character, walking out from a probe that lands in a run.
 */
function hasLongRun(text: string, from: number, dots: boolean): boolean {
  const n = text.length;
  const inRun = (code: number) => isDigit(code) || (dots && code === DOT);
  for (let i = from + UNSAFE_DIGITS - 1; i < n; i += UNSAFE_DIGITS) {
    if (!inRun(text.charCodeAt(i))) continue;
    let start = i;
    while (start > from && inRun(text.charCodeAt(start - 1))) start--;
    let end = i + 1;
    while (end < n && inRun(text.charCodeAt(end))) end++;
    if (end - start >= UNSAFE_DIGITS) return true;
    i = end - 1; // the next probe is 16 past the run's end: no later run is skipped
  }
  return false;
}

/**
 * Whether `text` (from `from` on) may hold a string with a lone surrogate (`"\ud800"`): JSON text can
 * only carry a surrogate escaped (`\uD800`–`\uDFFF`; UTF-8 cannot encode one), and `indexOf` finds
 * escapes at memchr speed. A high surrogate escape followed at once by a low one is a pair (an emoji
 * written `\ud83d\ude00`), not a lone surrogate: such records skip the walk over every string. An
 * escape right after a backslash (`\\uD800` is text, not an escape) counts as one, to stay on the safe side.
 */
export function mayHoldLoneSurrogate(text: string, from = 0): boolean {
  for (let i = text.indexOf(BACKSLASH_U, from); i !== -1; i = text.indexOf(BACKSLASH_U, i + 2)) {
    const unit = surrogateEscape(text, i);
    if (unit === NOT_SURROGATE) continue;
    if (i > 0 && text.charCodeAt(i - 1) === BACKSLASH) return true;
    if (unit !== HIGH_SURROGATE || !text.startsWith(BACKSLASH_U, i + 6)) return true;
    if (surrogateEscape(text, i + 6) !== LOW_SURROGATE) return true;
    i += 6; // the pair's low half: the next search starts past it
  }
  return false;
}

const BACKSLASH = 0x5c;
const NOT_SURROGATE = 0;
const HIGH_SURROGATE = 1;
const LOW_SURROGATE = 2;

/** What the `\uXXXX` escape at `at` is: a high (D800–DBFF) or low (DC00–DFFF) surrogate, or neither. */
function surrogateEscape(text: string, at: number): number {
  if ((text.charCodeAt(at + 2) | 0x20) !== 0x64) return NOT_SURROGATE; // 'd'
  const x = text.charCodeAt(at + 3) | 0x20; // lower case
  if (x === 0x38 || x === 0x39 || x === 0x61 || x === 0x62) return HIGH_SURROGATE; // 8, 9, a, b
  if (x >= 0x63 && x <= 0x66) return LOW_SURROGATE; // c–f
  return NOT_SURROGATE;
}

const INTEGER_TOKEN = /^-?\d+$/;

/**
 * A JSON number token: a `bigint` when it is an integer a double cannot hold exactly, an `ExactDecimal`
 * when it is a nonzero number a double reads as 0 (`1e-400`), else a number.
 */
function parseNumber(token: string): number | bigint | ExactDecimal {
  const n = Number(token);
  if (n === 0 && significand(token) !== '0') return new ExactDecimal(token);
  return Number.isSafeInteger(n) || !INTEGER_TOKEN.test(token) ? n : BigInt(token);
}

/**
 * Whether numeric text spells a number no double holds: beyond ±1.8e308 (`1e400`, which a double reads
 * as Infinity) or nonzero below ±4.9e-324 (`1e-400`, which a double reads as 0).
 */
export function outOfDoubleRange(text: string): boolean {
  const n = Number(text);
  return !Number.isFinite(n) || (n === 0 && significand(text) !== '0');
}

/**
 * Whether `text` (from `from` on) may hold a nonzero number a double reads as 0: an exponent of -300 or
 * below after a digit (`1e-400`). Smaller exponents need 24 zeros or more after the point to underflow,
 * a run of digits the long-run probe finds. `indexOf` finds the candidates at memchr speed.
 */
function mayUnderflow(text: string, from: number): boolean {
  for (const marker of UNDERFLOW_MARKERS) {
    for (let i = text.indexOf(marker, from); i !== -1; i = text.indexOf(marker, i + 2)) {
      const before = text.charCodeAt(i - 1);
      if (!isDigit(before) && before !== DOT) continue;
      let start = i + 2;
      while (text.charCodeAt(start) === ZERO) start++;
      let end = start;
      while (isDigit(text.charCodeAt(end))) end++;
      if (end - start > 3 || (end - start === 3 && Number(text.slice(start, end)) >= 300)) return true;
    }
  }
  return false;
}

const UNDERFLOW_MARKERS = ['e-', 'E-'];

/**
 * A JSON number with a fraction or an exponent whose digits a double does not keep
 * (`1.00000000000000000001`, `12345678901234567890.5`): its text, for a column that stores text, and its
 * nearest double (`valueOf`, and `JSON.stringify`), for everything else. `parseExact` with
 * `{ decimals: true }` makes one for such a decimal; any `parseExact` makes one for a nonzero number a
 * double reads as 0 (`1e-400`), which contracts refuse like `1e400` (`outOfDoubleRange`).
 */
export class ExactDecimal {
  // Private: an own enumerable field would make the number look like an object with a field `text`.
  readonly #text: string;
  constructor(text: string) {
    this.#text = text;
  }
  get text(): string {
    return this.#text;
  }
  valueOf(): number {
    return Number(this.#text);
  }
  toJSON(): number {
    return Number(this.#text);
  }
  toString(): string {
    return this.#text;
  }
}

/**
 * `parseNumber`, and a decimal whose digits a double would lose an `ExactDecimal`: only one of more than
 * 15 significant digits, which `mayHoldLongNumber` always sends here, so that a value's verdict never
 * depends on whether something else in its record took the exact parse. A number beyond the double's
 * range (`1e400`) stays what `JSON.parse` makes of it, on either path; one below it (`1e-400`) is an
 * `ExactDecimal`, on either path too (`mayUnderflow` sends it here).
 */
function parseNumberOrDecimal(token: string): number | bigint | ExactDecimal {
  if (INTEGER_TOKEN.test(token)) return parseNumber(token);
  const n = Number(token);
  if (n === 0 && significand(token) !== '0') return new ExactDecimal(token);
  // Below the smallest normal double, a double keeps fewer than 15 digits (1.2345e-322 is 1.24e-322).
  if (n !== 0 && Math.abs(n) < MIN_NORMAL && !doubleKeepsDigits(token, n)) return new ExactDecimal(token);
  if (!Number.isFinite(n) || significantDigits(token) <= DOUBLE_SAFE_DIGITS) return n;
  return doubleKeepsDigits(token, n) ? n : new ExactDecimal(token);
}

/** The smallest normal double: below it (the subnormals), a double holds fewer digits. */
const MIN_NORMAL = 2.2250738585072014e-308;

/** A double holds any decimal of this many significant digits (and `mayHoldLongNumber` sees longer ones). */
const DOUBLE_SAFE_DIGITS = 15;

/** The significant digits of a number token (`0.00120` → 2). */
function significantDigits(token: string): number {
  const digits = significand(token);
  return digits === '0' ? 0 : digits.slice(0, digits.indexOf('e')).replace('-', '').length;
}

/** Whether the double `n` read from the numeric text `text` has every digit of it (`1.10` yes, `1.00000000000000000001` no). */
export function doubleKeepsDigits(text: string, n: number): boolean {
  return significand(text) === significand(String(n));
}

const NUMBER_PARTS = /^[+-]?(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/;

/**
 * A number's value as `digits`e`exponent`, without leading or trailing zeros: two spellings of one value
 * (`1.10`, `1.1`, `11e-1`) give the same text, a token and its double's shortest form give the same text
 * only when the double keeps every digit. The sign is left out: a double keeps it (and `-0` is `0`).
 */
function significand(token: string): string {
  const match = NUMBER_PARTS.exec(token);
  if (!match) return token;
  const [, whole = '', fraction = '', exponent = '0'] = match;
  let digits = `${whole}${fraction}`.replace(/^0+/, '');
  let power = Number(exponent) - fraction.length;
  const trailing = /0+$/.exec(digits)?.[0].length ?? 0;
  digits = digits.slice(0, digits.length - trailing);
  power += trailing;
  return digits === '' ? '0' : `${digits}e${power}`;
}

/** Duplicate keys: the last one wins, as in `JSON.parse` (lossless-json would throw). */
const lastWins = ({ newValue }: { newValue: unknown }): unknown => newValue;

export interface ExactParseOptions {
  /**
   * Also keep decimals a double cannot hold, as `ExactDecimal`: for contracts that store a number in a
   * text column as its digits (config-defined datasets). @default false
   */
  readonly decimals?: boolean;
}

/**
 * `JSON.parse`, except that integers beyond ±2^53 are `bigint`s with their exact digits (and, with
 * `decimals`, decimals a double cannot hold are `ExactDecimal`s). `from` skips a prefix known to hold no
 * such number when deciding whether the slow, exact parse is needed.
 */
export function parseExact(text: string, from = 0, options: ExactParseOptions = {}): unknown {
  if (options.decimals) {
    if (!mayHoldLongNumber(text, from) && !mayUnderflow(text, from)) return JSON.parse(text);
    return losslessParse(text, null, { parseNumber: parseNumberOrDecimal, onDuplicateKey: lastWins });
  }
  if (!mayHoldUnsafeInteger(text, from) && !mayUnderflow(text, from)) return JSON.parse(text);
  return losslessParse(text, null, { parseNumber, onDuplicateKey: lastWins });
}

/**
 * Whether `text` (from `from` on) has a run of 16 digits and dots: the only way to spell a number whose
 * digits a double may not keep (a double keeps any 15 significant digits).
 */
function mayHoldLongNumber(text: string, from: number): boolean {
  return hasLongRun(text, from, true);
}

/**
 * `JSON.stringify` (no indentation, or `space`), writing `bigint`s as their digits. Costs nothing more
 * when there is no bigint: `JSON.stringify` refuses one, and only then does the exact writer run.
 */
export function stringifyExact(value: unknown, space?: number): string {
  try {
    return JSON.stringify(value, null, space);
  } catch (error) {
    if (!(error instanceof TypeError) || !/BigInt/i.test(error.message)) throw error;
    return losslessStringify(value, null, space) as string;
  }
}

/** ±Infinity (`1e400` in the source) as a number JSON can carry, which reads back as ±Infinity again. */
const OUT_OF_RANGE_NUMBER = {
  test: (value: unknown) => value === Number.POSITIVE_INFINITY || value === Number.NEGATIVE_INFINITY,
  stringify: (value: unknown) => ((value as number) > 0 ? '1e400' : '-1e400'),
};

/** An ExactDecimal as its digits, not its nearest double. */
const EXACT_DECIMAL = {
  test: (value: unknown) => value instanceof ExactDecimal,
  stringify: (value: unknown) => (value as ExactDecimal).text,
};

/**
 * Like `stringifyExact`, and a number beyond the double range is written `1e400` (or `-1e400`) rather
 * than JSON's `null`, an `ExactDecimal` as its digits. For manifests, checkpoints and rescued values,
 * which must say what the source said; slower (JavaScript, not V8's serializer), so not for the hot path.
 */
export function stringifyLossless(value: unknown, space?: number): string {
  return losslessStringify(value, null, space, [OUT_OF_RANGE_NUMBER, EXACT_DECIMAL]) as string;
}

/**
 * Whether a parsed value holds a number `JSON.stringify` would not write as the source did: ±Infinity
 * (as `null`) or an `ExactDecimal` (as its nearest double). Walks with an explicit stack: values may
 * be nested deeper than a recursion can go.
 */
export function holdsInexactNumber(value: unknown): boolean {
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const node = stack.pop();
    if (typeof node === 'number') {
      if (!Number.isFinite(node)) return true;
    } else if (node instanceof ExactDecimal) return true;
    else if (Array.isArray(node)) for (const item of node) stack.push(item);
    else if (node !== null && typeof node === 'object')
      for (const key in node) stack.push((node as Record<string, unknown>)[key]);
  }
  return false;
}

/** With the `u` flag a surrogate pair is one code point: only a lone surrogate matches. */
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

/**
 * The lone surrogates in the strings (values and keys) of a parsed value, by JSON path segments. A
 * lone surrogate cannot be written as UTF-8: Parquet and every UTF-8 writer store U+FFFD instead, so
 * each one is worth a warning.
 */
export function loneSurrogatePaths(value: unknown): PropertyKey[][] {
  return pathsWhere(value, (node) => typeof node === 'string' && LONE_SURROGATE.test(node), true);
}

/**
 * The numbers beyond the double range in a parsed value, by path: ±Infinity (`1e400` in the text) and
 * nonzero numbers below it (`1e-400`, an `ExactDecimal`).
 */
export function outOfRangePaths(value: unknown): PropertyKey[][] {
  return pathsWhere(
    value,
    (node) =>
      node === Number.POSITIVE_INFINITY ||
      node === Number.NEGATIVE_INFINITY ||
      (node instanceof ExactDecimal && outOfDoubleRange(node.text)),
  );
}

/** Paths of the values (and, with `keys`, of the object keys) that `test` picks out. */
function pathsWhere(value: unknown, test: (node: unknown) => boolean, keys = false): PropertyKey[][] {
  const found: PropertyKey[][] = [];
  const visit = (node: unknown, path: PropertyKey[]): void => {
    if (test(node)) found.push(path);
    else if (Array.isArray(node)) {
      for (let i = 0; i < node.length; i++) visit(node[i], [...path, i]);
    } else if (node !== null && typeof node === 'object') {
      for (const [key, item] of Object.entries(node)) {
        if (keys && test(key)) found.push([...path, key]);
        visit(item, [...path, key]);
      }
    }
  };
  visit(value, []);
  return found;
}
