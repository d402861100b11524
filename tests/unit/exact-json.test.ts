import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  ExactDecimal,
  holdsInexactNumber,
  loneSurrogatePaths,
  mayHoldLoneSurrogate,
  mayHoldUnsafeInteger,
  outOfDoubleRange,
  outOfRangePaths,
  parseExact,
  stringifyExact,
  stringifyLossless,
} from '../../shared/contracts/exact-json.ts';
import {
  example,
  isNumericString,
  scalarText,
  toNumber,
  valueText,
} from '../../shared/contracts/silver/normalize.ts';
import { JSON_TEST_SUITE } from '../helpers/fixtures.ts';
import { seededRandom } from '../helpers/random.ts';
import { generateDocument } from '../helpers/random-json.ts';

/** A parsed value with its bigints and exact decimals rounded to doubles, as JSON.parse reads them. */
function rounded(value: unknown): unknown {
  if (typeof value === 'bigint' || value instanceof ExactDecimal) return Number(value);
  if (Array.isArray(value)) return value.map(rounded);
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    Object.defineProperty(out, key, {
      value: rounded(item),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}

/** Whether every string (and key) of a value comes back the same from UTF-8. */
function survivesUtf8(value: unknown): boolean {
  const same = (s: string) => Buffer.from(s, 'utf8').toString('utf8') === s;
  if (typeof value === 'string') return same(value);
  if (Array.isArray(value)) return value.every(survivesUtf8);
  if (value === null || typeof value !== 'object') return true;
  return Object.entries(value).every(([key, item]) => same(key) && survivesUtf8(item));
}

describe('parseExact', () => {
  it('keeps integers beyond 2^53 as bigints with their exact digits', () => {
    expect(parseExact('{"a":9007199254740993,"b":-12345678901234567890,"c":[18446744073709551617]}')).toEqual(
      {
        a: 9007199254740993n,
        b: -12345678901234567890n,
        c: [18446744073709551617n],
      },
    );
  });

  it('gives what JSON.parse gives for everything else: safe integers, decimals, -0, 1e400', () => {
    const text =
      '{"n":9007199254740991,"d":0.1000000000000000055511151231257827,"z":-0,"big":1e400,"e":12345678901234567.5}';
    const exact = parseExact(text) as Record<string, unknown>;
    expect(exact).toEqual(JSON.parse(text));
    expect(Object.is(exact.z, -0)).toBe(true);
    expect(exact.big).toBe(Number.POSITIVE_INFINITY);
  });

  it('agrees with JSON.parse on documents full of traps that need the exact parse', () => {
    for (let seed = 1; seed <= 200; seed++) {
      const text = generateDocument(seed).text;
      // Force the exact path: a 16-digit run in a string does not change any value.
      const forced = `[${JSON.stringify('1234567890123456')},${text}]`;
      // Rounded the way JSON.parse rounds, the exact values are JSON.parse's.
      expect(rounded(parseExact(forced)), `seed ${seed}`).toEqual(JSON.parse(forced));
    }
  });

  it('keeps __proto__ as an own key and lets the last duplicate key win, as JSON.parse does', () => {
    const text = '{"__proto__":{"x":1},"k":1,"k":12345678901234567890}';
    const value = parseExact(text) as Record<string, unknown>;
    expect(Object.getPrototypeOf(value)).toBe(Object.prototype);
    expect(Object.hasOwn(value, '__proto__')).toBe(true);
    expect(value.k).toBe(12345678901234567890n);
  });

  it('finds a 16-digit run exactly where /\\d{16}/ does, on 20,000 seeded strings', () => {
    const random = seededRandom(14);
    for (let k = 0; k < 20_000; k++) {
      let text = '';
      const length = Math.floor(random() * 80);
      for (let j = 0; j < length; j++) text += random() < 0.85 ? String(Math.floor(random() * 10)) : ',';
      const from = Math.floor(random() * 5);
      expect(mayHoldUnsafeInteger(text, from), `${text} from ${from}`).toBe(/\d{16}/.test(text.slice(from)));
      const escaped = text.replaceAll(',', random() < 0.5 ? '\\uD9' : '\\u00');
      expect(mayHoldLoneSurrogate(escaped), escaped).toBe(/\\u[dD][89a-fA-F]/.test(escaped));
    }
  });

  it('takes the exact path only when a 16-digit run follows `from`', () => {
    expect(mayHoldUnsafeInteger('{"a":123456789012345}')).toBe(false);
    expect(mayHoldUnsafeInteger('{"a":1234567890123456}')).toBe(true);
    expect(mayHoldUnsafeInteger('{"s":"1234567890123456","r":{}}', 20)).toBe(false);
  });

  it('reads the JSONTestSuite numbers an implementation may round: integers exact, overflow as ±Infinity, underflow as written', () => {
    const files = readdirSync(JSON_TEST_SUITE).filter((f) => f.startsWith('i_number_'));
    expect(files.length).toBeGreaterThan(5);
    let underflows = 0;
    for (const file of files) {
      const text = readFileSync(join(JSON_TEST_SUITE, file), 'utf8');
      const token = text.trim().slice(1, -1).trim();
      const [value] = parseExact(text) as [unknown];
      if (/^-?\d+$/.test(token)) {
        expect(String(value), file).toBe(token);
      } else if (Number(token) === 0 && /[1-9]/.test(token.split(/e/i)[0]!)) {
        // A nonzero number a double reads as 0 (123.456e-789): kept as written, for the contracts to refuse.
        underflows++;
        expect(value, file).toBeInstanceOf(ExactDecimal);
        expect(String(value), file).toBe(token);
        expect(outOfDoubleRange(token), file).toBe(true);
      } else {
        expect(typeof value, file).toBe('number');
      }
    }
    expect(underflows).toBeGreaterThan(0);
  });

  it('keeps a nonzero number a double reads as 0 as written, in any record, and nothing else', () => {
    for (const token of ['1e-400', '-1e-400', '1E-00400', '0.5e-330', '123.456e-789', '1e-325']) {
      for (const options of [{}, { decimals: true }]) {
        for (const text of [`{"x":${token}}`, `{"a":12345678901234567890,"x":${token}}`]) {
          const { x } = parseExact(text, 0, options) as { x: unknown };
          expect(x, `${text} ${JSON.stringify(options)}`).toBeInstanceOf(ExactDecimal);
          expect(String(x)).toBe(token);
        }
      }
      expect(outOfDoubleRange(token), token).toBe(true);
      expect(isNumericString(token), token).toBe(false);
      expect(stringifyLossless(parseExact(`[${token}]`))).toBe(`[${token}]`);
    }
    // Zero however spelled, the smallest doubles, and text holding "e-" stay what JSON.parse makes of them.
    for (const text of [
      '{"x":0e-500,"y":-0.0e-999,"z":5e-324,"w":1e-299}',
      '{"s":"fee-schedule e-400","t":"1e-400"}',
    ]) {
      expect(parseExact(text)).toEqual(JSON.parse(text));
    }
    expect(outOfDoubleRange('5e-324')).toBe(false);
    expect(outOfDoubleRange('0e-500')).toBe(false);
    expect(outOfDoubleRange('1e400')).toBe(true);
    expect(outOfRangePaths(parseExact('{"a":[1,1e-400],"b":1e400,"c":0}'))).toEqual([['a', 1], ['b']]);
  });

  it('keeps a subnormal whose digits a double does not hold as written, for a text column', () => {
    const decimals = { decimals: true };
    for (const token of ['1.2345e-322', '3e-324', '-4.1234e-320']) {
      const { x } = parseExact(`{"x":${token}}`, 0, decimals) as { x: unknown };
      expect(x, token).toBeInstanceOf(ExactDecimal);
      expect(String(x)).toBe(token);
      // Not out of range: a number column holds its nearest double.
      expect(outOfDoubleRange(token)).toBe(false);
    }
    // A subnormal a double holds exactly stays a number.
    expect(parseExact('{"x":5e-324}', 0, decimals)).toEqual({ x: 5e-324 });
  });

  it('writes rescued values as the source did: 1e400, 1e-400 and long decimals, not null, 0 and rounded', () => {
    const value = parseExact('{"a":1e400,"b":[1e-400],"c":1.00000000000000000001,"d":2}', 0, {
      decimals: true,
    });
    expect(valueText(value)).toBe('{"a":1e400,"b":[1e-400],"c":1.00000000000000000001,"d":2}');
    expect(holdsInexactNumber({ d: [2, 'x', null] })).toBe(false);
  });
});

describe('parseExact with decimals', () => {
  const decimals = { decimals: true } as const;

  it('keeps a decimal whose digits a double would lose as an ExactDecimal with its text', () => {
    const text =
      '{"a":1.00000000000000000001,"b":1234567.890123456789,"c":-12345678901234567890.5,"d":[0.12345678901234567891],"e":1.00000000000000000001e5}';
    const value = parseExact(text, 0, decimals) as Record<string, unknown>;
    // Its text is private (no field to look into): compared as the text it prints.
    const decimal = (v: unknown) => (v instanceof ExactDecimal ? `decimal ${v}` : v);
    expect(decimal(value.a)).toBe('decimal 1.00000000000000000001');
    expect(decimal(value.b)).toBe('decimal 1234567.890123456789');
    expect(decimal(value.c)).toBe('decimal -12345678901234567890.5');
    expect((value.d as unknown[]).map(decimal)).toEqual(['decimal 0.12345678901234567891']);
    expect(decimal(value.e)).toBe('decimal 1.00000000000000000001e5');
    expect(Object.keys(value.a as object)).toEqual([]);
    // Anything else reads it as its nearest double, as JSON.parse does.
    expect(Number(value.a)).toBe(1);
    expect(JSON.parse(JSON.stringify(value))).toEqual(JSON.parse(text));
  });

  it('gives a number for a decimal a double holds, however it is spelled, and a bigint as before', () => {
    const text =
      '{"a":0.30000000000000004,"b":1.10,"c":1000000000000000.0,"d":-0.000000000000000000,"e":1E+2,"f":12345678901234567890,"g":123456789012345.6}';
    const value = parseExact(text, 0, decimals) as Record<string, unknown>;
    expect(value).toEqual({ ...JSON.parse(text), f: 12345678901234567890n });
    for (const key of ['a', 'b', 'c', 'd', 'e', 'g']) expect(typeof value[key], key).toBe('number');
  });

  it('gives a value the same verdict whether or not another field of its record takes the exact parse', () => {
    const verdict = (x: unknown) => (x instanceof ExactDecimal ? `exact ${x.text}` : x);
    for (const token of ['1e400', '-1e400', '1e-400', '4.9e-324', '0.1', '1.5e300']) {
      const alone = parseExact(`{"x":${token}}`, 0, decimals) as { x: unknown };
      const beside = parseExact(`{"a":1.00000000000000000001,"x":${token}}`, 0, decimals) as { x: unknown };
      expect(verdict(beside.x), token).toBe(verdict(alone.x));
      // 1e-400 is no double but 0: kept as written, for the contract to refuse (outOfDoubleRange); a
      // subnormal whose digits a double does not hold (4.9e-324 is 5e-324) is kept as written too.
      const written = token === '1e-400' || token === '4.9e-324';
      expect(verdict(alone.x), token).toBe(written ? `exact ${token}` : JSON.parse(token));
    }
  });

  it('agrees with JSON.parse on documents full of traps, once rounded', () => {
    for (let seed = 1; seed <= 200; seed++) {
      const text = generateDocument(seed).text;
      const forced = `[${JSON.stringify('1234567.890123456')},${text}]`;
      const exact = parseExact(forced, 0, decimals);
      expect(rounded(exact), `seed ${seed}`).toEqual(JSON.parse(forced));
    }
  });
});

describe('stringifyExact', () => {
  it('writes bigints as their digits and is JSON.stringify otherwise', () => {
    expect(stringifyExact({ a: 9007199254740993n, b: [1, 'x', null] })).toBe(
      '{"a":9007199254740993,"b":[1,"x",null]}',
    );
    expect(stringifyExact({ a: 1, b: 'x' }, 2)).toBe(JSON.stringify({ a: 1, b: 'x' }, null, 2));
    const round = parseExact(stringifyExact({ plan_id: 12345678901234567890n }, 2));
    expect(round).toEqual({ plan_id: 12345678901234567890n });
  });
});

describe('loneSurrogatePaths', () => {
  it('finds lone surrogates in values and keys, by path, and not proper pairs', () => {
    const value = JSON.parse('{"a":["ok","\\ud800"],"b":{"\\udc00":"x"},"c":"\\ud83d\\ude00"}');
    expect(loneSurrogatePaths(value)).toEqual([
      ['a', 1],
      ['b', '\udc00'],
    ]);
  });

  it('is only looked for when the text escapes a surrogate', () => {
    expect(mayHoldLoneSurrogate('{"a":"\\u00e9"}')).toBe(false);
    expect(mayHoldLoneSurrogate('{"a":"\\uD800"}')).toBe(true);
  });

  it('is looked for when a record has a lone surrogate, and not for pairs alone, on 20,000 seeded strings', () => {
    const random = seededRandom(16);
    const tokens = [
      'a',
      '\\u00e9',
      '\\ud83d\\ude00',
      '\\uD83D\\uDE00',
      '\\ud800',
      '\\uDBFF',
      '\\udc00',
      '\\uDFFF',
    ];
    const backslashes = ['\\\\', '\\\\ud800'];
    for (let k = 0; k < 20_000; k++) {
      const withBackslashes = k % 2 === 1;
      const pool = withBackslashes ? [...tokens, ...backslashes] : tokens;
      let body = '';
      const length = Math.floor(random() * 8);
      for (let j = 0; j < length; j++) body += pool[Math.floor(random() * pool.length)];
      const text = `{"s":"${body}"}`;
      // The oracle: JSON.parse, then a walk over its strings (adjacent halves are a pair, as in JSON).
      const lone = loneSurrogatePaths(JSON.parse(text)).length > 0;
      if (lone) expect(mayHoldLoneSurrogate(text), text).toBe(true);
      // Without an escaped backslash the check is exact: a record of pairs only skips the walk.
      if (!withBackslashes) expect(mayHoldLoneSurrogate(text), text).toBe(lone);
    }
    expect(mayHoldLoneSurrogate('{"a":"\\ud83d\\ude00"}')).toBe(false);
    expect(mayHoldLoneSurrogate('{"a":"\\ud83d"}')).toBe(true);
    expect(mayHoldLoneSurrogate('{"a":"\\ude00\\ud83d"}')).toBe(true);
  });

  it('finds the lone surrogate of every JSONTestSuite surrogate case JSON.parse accepts', () => {
    const files = readdirSync(JSON_TEST_SUITE).filter((f) => /^i_.*surrogate/i.test(f));
    expect(files.length).toBeGreaterThan(5);
    for (const file of files) {
      const text = readFileSync(join(JSON_TEST_SUITE, file), 'utf8');
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch {
        continue; // invalid UTF-8 bytes: the scanner rejects those
      }
      // The oracle: what a UTF-8 writer (Parquet) would change.
      const changed = !survivesUtf8(value);
      if (changed) expect(mayHoldLoneSurrogate(text), file).toBe(true);
      expect(loneSurrogatePaths(value).length > 0, file).toBe(changed);
    }
  });
});

describe('value normalization at the edges', () => {
  it('writes a bigint header or id as its digits', () => {
    expect(scalarText(12345678901234567890n)).toBe('12345678901234567890');
  });

  it('does not take 1e400 for a number', () => {
    expect(isNumericString('1e400')).toBe(false);
    expect(isNumericString(' -1E400 ')).toBe(false);
    expect(isNumericString('1e308')).toBe(true);
    expect(toNumber('1e400')).toBeNull();
    expect(toNumber(Number.POSITIVE_INFINITY)).toBeNull();
  });

  it('shows Infinity and bigints as they are in examples', () => {
    expect(example(Number.NEGATIVE_INFINITY)).toBe('-Infinity');
    expect(example({ id: 9007199254740993n })).toBe('{"id":9007199254740993}');
  });
});
