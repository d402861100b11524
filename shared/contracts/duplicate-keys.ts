/**
 * Keys written twice in one JSON object. JSON allows them and `JSON.parse` keeps the last value without
 * a word, so `{"billing_code":"1","billing_code":"2"}` would become `2` in silver and the `1` would be
 * gone: a silent change. Silver quarantines such a record instead, naming the key and where it is.
 *
 * Finding them exactly means reading every key of every object, so it is done in two steps:
 * `mayHoldDuplicateKey` compares two counts that cost about 2 % of silver, and only a record whose
 * counts differ is read key by key (`duplicateKeys`).
 */
import { ExactDecimal, parseExact } from './exact-json.ts';

/** A key whose object holds it twice (or more) with different values. */
export interface DuplicateKey {
  /** Path segments of the object, then the key. */
  readonly path: readonly PropertyKey[];
  /** Where each value starts in the text (UTF-16 index): the first and the one that replaced it. */
  readonly firstAt: number;
  readonly againAt: number;
}

const QUOTE = 0x22;
const COLON = ':';

/**
 * Whether the JSON text `text[from…]`, parsed as `value`, may have a key written twice in an object.
 * Every key is a string followed by `:`, so the colons that follow a quote (spaces between allowed)
 * are at least as many as the keys written; `JSON.parse` keeps one key per name, so `value` has fewer
 * keys than that exactly when a key was written twice or a string holds `":`. Equal counts prove there
 * is no duplicate; unequal ones send the text to `duplicateKeys`.
 */
export function mayHoldDuplicateKey(text: string, from: number, value: unknown): boolean {
  let written = 0;
  for (let i = text.indexOf(COLON, from); i !== -1; i = text.indexOf(COLON, i + 1)) {
    let before = i - 1;
    let c = text.charCodeAt(before);
    while (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) c = text.charCodeAt(--before);
    if (c === QUOTE) written++;
  }
  return written !== keyCount(value, 0);
}

/** Recursion stays far from the stack's end; deeper values are counted with a stack of their own. */
const MAX_RECURSION = 500;

/** The keys of every object in a parsed JSON value. */
function keyCount(value: unknown, depth: number): number {
  if (typeof value !== 'object' || value === null) return 0;
  if (depth > MAX_RECURSION) return keyCountIterative(value);
  let n = 0;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const item = value[i];
      if (typeof item === 'object' && item !== null) n += keyCount(item, depth + 1);
    }
  } else {
    for (const key in value) {
      n++;
      const item = (value as Record<string, unknown>)[key];
      if (typeof item === 'object' && item !== null) n += keyCount(item, depth + 1);
    }
  }
  return n;
}

function keyCountIterative(value: object): number {
  let n = 0;
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const node = stack.pop();
    if (typeof node !== 'object' || node === null) continue;
    if (Array.isArray(node)) for (const item of node) stack.push(item);
    else
      for (const key in node) {
        n++;
        stack.push((node as Record<string, unknown>)[key]);
      }
  }
  return n;
}

interface Frame {
  readonly path: PropertyKey[];
  /** An object's keys so far, each with where its value starts and ends; null for an array. */
  readonly keys: Map<string, { start: number; end: number }> | null;
  index: number;
  key: string | undefined;
  valueStart: number;
}

/**
 * The keys written twice with different values in the JSON text `text[from, to)`, which must be valid
 * JSON (bronze holds only records the scanner checked). Values that are the same JSON value twice
 * (`{"a":1,"a":1.0}`) change nothing and are not reported.
 */
export function duplicateKeys(text: string, from = 0, to = text.length): DuplicateKey[] {
  const found: DuplicateKey[] = [];
  const frames: Frame[] = [];
  // A value ended at `end`: an object's member is checked against the keys before it.
  const valueEnded = (end: number): void => {
    const frame = frames.at(-1);
    if (!frame?.keys || frame.key === undefined) return;
    const earlier = frame.keys.get(frame.key);
    const span = { start: frame.valueStart, end };
    if (earlier && !sameValue(text, earlier, span)) {
      found.push({ path: [...frame.path, frame.key], firstAt: earlier.start, againAt: span.start });
    }
    frame.keys.set(frame.key, span);
    frame.key = undefined;
  };
  const childPath = (): PropertyKey[] => {
    const frame = frames.at(-1);
    if (!frame) return [];
    return [...frame.path, frame.keys ? (frame.key ?? '') : frame.index];
  };
  let i = from;
  while (i < to) {
    const c = text.charCodeAt(i);
    if (c === 0x7b || c === 0x5b) {
      const frame = frames.at(-1);
      if (frame) frame.valueStart = i;
      frames.push({
        path: childPath(),
        keys: c === 0x7b ? new Map() : null,
        index: 0,
        key: undefined,
        valueStart: -1,
      });
      i++;
    } else if (c === 0x7d || c === 0x5d) {
      frames.pop();
      i++;
      valueEnded(i);
    } else if (c === 0x2c) {
      const frame = frames.at(-1);
      if (frame && !frame.keys) frame.index++;
      i++;
    } else if (c === QUOTE) {
      const end = stringEnd(text, i);
      const frame = frames.at(-1);
      if (frame?.keys && frame.key === undefined) {
        const token = text.slice(i, end);
        frame.key = token.includes('\\') ? (JSON.parse(token) as string) : token.slice(1, -1);
      } else {
        if (frame) frame.valueStart = i;
        valueEnded(end);
      }
      i = end;
    } else if (c === 0x3a || c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) {
      i++;
    } else {
      // A number or a literal: it runs to the next delimiter.
      const start = i;
      while (i < to && !DELIMITER.test(text[i]!)) i++;
      const frame = frames.at(-1);
      if (frame) frame.valueStart = start;
      valueEnded(i);
    }
  }
  return found;
}

const DELIMITER = /[,\]}\s]/;

/** One past the closing quote of the string opening at `start`. */
function stringEnd(text: string, start: number): number {
  let i = text.indexOf('"', start + 1);
  for (;;) {
    let backslashes = 0;
    while (text.charCodeAt(i - 1 - backslashes) === 0x5c) backslashes++;
    if (backslashes % 2 === 0) return i + 1;
    i = text.indexOf('"', i + 1);
  }
}

/** Whether two spans of JSON text are the same value: the same text, or the same once parsed exactly. */
function sameValue(
  text: string,
  a: { start: number; end: number },
  b: { start: number; end: number },
): boolean {
  const first = text.slice(a.start, a.end);
  const second = text.slice(b.start, b.end);
  if (first === second) return true;
  return sameJsonValue(parseExact(first, 0, { decimals: true }), parseExact(second, 0, { decimals: true }));
}

/**
 * Deep equality of values from `parseExact`: numbers by value (`1.0` is `1`, but `-0` is not `0`), an
 * `ExactDecimal` by its digits, keys in any order.
 */
export function sameJsonValue(a: unknown, b: unknown): boolean {
  if (a instanceof ExactDecimal || b instanceof ExactDecimal) {
    return a instanceof ExactDecimal && b instanceof ExactDecimal && a.text === b.text;
  }
  if (typeof a !== 'object' || a === null || typeof b !== 'object' || b === null) {
    return Object.is(a, b);
  }
  if (Array.isArray(a) || Array.isArray(b)) {
    return (
      Array.isArray(a) &&
      Array.isArray(b) &&
      a.length === b.length &&
      a.every((item, i) => sameJsonValue(item, b[i]))
    );
  }
  const aKeys = Object.keys(a);
  const bRecord = b as Record<string, unknown>;
  return (
    aKeys.length === Object.keys(b).length &&
    aKeys.every(
      (key) =>
        Object.hasOwn(bRecord, key) && sameJsonValue((a as Record<string, unknown>)[key], bRecord[key]),
    )
  );
}
