import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  EXAMPLE_MAX_CHARS,
  example,
  integerArray,
  isIsoDate,
  isNumericString,
  jsonPath,
  jsonText,
  jsonTextIterative,
  parseDate,
  rescuedJson,
  scalarText,
  stableId,
  text,
  textArray,
  toNumber,
  valueAt,
} from '../../shared/contracts/silver/normalize.ts';
import { RecordChecker, type RuleSpec } from '../../shared/contracts/silver/record-checker.ts';
import { seededRandom } from '../helpers/random.ts';

describe('Function: text', () => {
  it('trims strings and turns blank ones into null', () => {
    expect(text('  a b ')).toBe('a b');
    expect(text('')).toBeNull();
    expect(text(' \t\n')).toBeNull();
  });
  it('gives null for anything that is not a string', () => {
    for (const v of [undefined, null, 5, true, {}, []]) expect(text(v)).toBeNull();
  });
  it('scalarText also spells finite numbers and booleans', () => {
    expect(scalarText(12)).toBe('12');
    expect(scalarText(1.5)).toBe('1.5');
    expect(scalarText(false)).toBe('false');
    expect(scalarText(Number.NaN)).toBeNull();
    expect(scalarText({})).toBeNull();
  });
});

describe('Function: textArray', () => {
  it('returns a clean array itself, without copying', () => {
    const clean = ['11', '22'];
    expect(textArray(clean)).toBe(clean);
  });
  it('trims entries and drops blanks and non-strings', () => {
    expect(textArray([' 11 ', '', 5, '22'])).toEqual(['11', '22']);
  });
  it('gives null for an empty array, nothing left, or no array', () => {
    expect(textArray([])).toBeNull();
    expect(textArray(['  '])).toBeNull();
    expect(textArray('11')).toBeNull();
  });
});

describe('Function: toNumber', () => {
  it('keeps finite numbers and converts numeric strings', () => {
    expect(toNumber(123.45)).toBe(123.45);
    expect(toNumber(' 123.40 ')).toBe(123.4);
    expect(toNumber('1.2345e2')).toBe(123.45);
    expect(toNumber('-5')).toBe(-5);
    expect(toNumber('.5')).toBe(0.5);
  });
  it('gives null for non-numeric values', () => {
    for (const v of ['12a', '', '1,000', 'NaN', 'Infinity', null, undefined, {}, Number.POSITIVE_INFINITY]) {
      expect(toNumber(v)).toBeNull();
    }
    expect(isNumericString('12a')).toBe(false);
    expect(isNumericString('12')).toBe(true);
  });
  it('integerArray keeps integer arrays as they are and converts numeric strings', () => {
    const npis = [1234567890, 2345678901];
    expect(integerArray(npis)).toBe(npis);
    expect(integerArray(['1234567890', 5, 'x', 1.5])).toEqual([1234567890, 5]);
    expect(integerArray([])).toBeNull();
    expect(integerArray(7)).toBeNull();
  });
});

describe('Function: parseDate', () => {
  it('accepts YYYY-MM-DD as it is', () => {
    expect(parseDate('2024-12-31')).toBe('2024-12-31');
    expect(parseDate('9999-12-31')).toBe('9999-12-31');
    expect(parseDate('2024-02-29')).toBe('2024-02-29');
    expect(isIsoDate('2024-12-31')).toBe(true);
  });
  it('converts the other spellings payers use to YYYY-MM-DD', () => {
    expect(parseDate('12/31/2024')).toBe('2024-12-31');
    expect(parseDate('1/2/2024')).toBe('2024-01-02');
    expect(parseDate('2024/12/31')).toBe('2024-12-31');
    expect(parseDate('2024-12-31T00:00:00Z')).toBe('2024-12-31');
    expect(parseDate('20241231')).toBe('2024-12-31');
    expect(parseDate(' 2024-12-31 ')).toBe('2024-12-31');
    expect(isIsoDate('12/31/2024')).toBe(false);
  });
  it('rejects dates that do not exist and non-dates', () => {
    for (const v of [
      '2023-02-29',
      '2024-02-30',
      '2024-13-01',
      '2024-00-10',
      '31/12/2024',
      'soon',
      '',
      20241231,
    ]) {
      expect(parseDate(v)).toBeNull();
    }
    expect(parseDate('1900-02-29')).toBeNull();
    // The date of a timestamp whose time does not exist: on main 2024-12-31, "converted" with a warning.
    for (const v of ['2024-12-31T25:00:00Z', '2024-12-31T99:99xx', '2024-12-31 12:60']) {
      expect(parseDate(v)).toBeNull();
    }
    expect(parseDate('2024-12-31T23:59:59.999-05:00')).toBe('2024-12-31');
    expect(parseDate('2000-02-29')).toBe('2000-02-29');
  });
});

describe('Function: isIsoDate', () => {
  // The regex it replaced (for speed), with the calendar check: the reference it must agree with.
  const reference = (value: string): boolean => {
    const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(value);
    if (!m) return false;
    const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
    const days = [
      31,
      y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0) ? 29 : 28,
      31,
      30,
      31,
      30,
      31,
      31,
      30,
      31,
      30,
      31,
    ];
    return mo >= 1 && mo <= 12 && d >= 1 && d <= days[mo - 1]!;
  };

  it('agrees with the regex on near-dates and random strings', () => {
    const random = seededRandom(11);
    const alphabet = ['0', '1', '2', '3', '9', '-', '/', ':', ' ', 'x', '\u0663', '\n', '+'];
    const cases = [
      '2024-12-31',
      '0000-01-01',
      '2024-1-011',
      '+024-12-31',
      '2024-12-3a',
      '2024-12-31\n',
      '١٢٣٤-12-31',
    ];
    for (let i = 0; i < 20_000; i++) {
      // Mostly a valid date with one character changed, sometimes random characters.
      const base = [...'2024-02-29'];
      if (random() < 0.5) base[Math.floor(random() * 10)] = alphabet[Math.floor(random() * alphabet.length)]!;
      else for (let c = 0; c < 10; c++) if (random() < 0.3) base[c] = String(Math.floor(random() * 10));
      cases.push(base.join(''));
    }
    for (const value of cases) expect(isIsoDate(value), JSON.stringify(value)).toBe(reference(value));
    expect(cases.filter(isIsoDate).length).toBeGreaterThan(1000);
    expect(cases.filter((c) => !isIsoDate(c)).length).toBeGreaterThan(1000);
  });
});

describe('Function: stableId', () => {
  it('is deterministic, prefixed and of the requested length', () => {
    const id = stableId('inline-', ['run', 1, 2, 3]);
    expect(id).toBe(stableId('inline-', ['run', 1, 2, 3]));
    expect(id).toMatch(/^inline-[0-9a-f]{16}$/);
    expect(stableId('', ['x'], 8)).toMatch(/^[0-9a-f]{8}$/);
  });
  it('tells apart parts that concatenate alike', () => {
    expect(stableId('', ['ab', 'c'])).not.toBe(stableId('', ['a', 'bc']));
    expect(stableId('', ['run', 1, 23])).not.toBe(stableId('', ['run', 12, 3]));
  });
});

describe('Function: jsonPath / valueAt', () => {
  it('writes paths as dotted keys and bracketed indexes', () => {
    expect(jsonPath(['negotiated_rates', 0, 'negotiated_prices', 2, 'negotiated_rate'])).toBe(
      'negotiated_rates[0].negotiated_prices[2].negotiated_rate',
    );
    expect(jsonPath([])).toBe('');
    expect(jsonPath(['a.b', 'c'])).toBe('["a.b"].c');
    expect(jsonPath(['a', 1, 'b', 'c'], 0, 2)).toBe('a[1]');
    expect(jsonPath(['a', 1, 'b', 'c'], 2)).toBe('b.c');
  });
  it('finds values by path, undefined when absent', () => {
    const doc = { a: [{ b: 1 }] };
    expect(valueAt(doc, ['a', 0, 'b'])).toBe(1);
    expect(valueAt(doc, ['a', 3, 'b'])).toBeUndefined();
    expect(valueAt(doc, [])).toBe(doc);
  });
});

describe('Function: example / rescuedJson', () => {
  it('shows values as JSON, cut to 200 characters', () => {
    expect(example('x')).toBe('"x"');
    expect(example({ a: 1 })).toBe('{"a":1}');
    expect(example(undefined)).toBe('undefined');
    expect(example('y'.repeat(1000))).toHaveLength(EXAMPLE_MAX_CHARS);
  });
  it('merges the rescued values of several objects into one JSON object', () => {
    const rescued = new Map([
      ['', { foo: 1 }],
      ['rates[0]', { 'rates[0].bar': 'b' }],
    ]);
    expect(rescuedJson(rescued, '', 'rates[0]')).toBe('{"foo":1,"rates[0].bar":"b"}');
    expect(rescuedJson(rescued, 'rates[1]')).toBeNull();
    expect(rescuedJson(new Map(), '')).toBeNull();
  });
});

describe('Class: RecordChecker', () => {
  const schema = z.strictObject({
    id: z.string().trim().min(1),
    kind: z.enum(['a', 'b']),
    amount: z.number(),
    note: z.string().nullish(),
    when: z.iso.date().nullish(),
    items: z.array(z.strictObject({ code: z.string(), size: z.number().min(0) })).min(1),
  });
  const rules: RuleSpec[] = [
    { id: 'thing.required', severity: 'quarantine', description: '' },
    { id: 'thing.type', severity: 'quarantine', description: '' },
    { id: 'thing.kind.enum', severity: 'quarantine', description: '' },
    { id: 'thing.amount.numeric_string', severity: 'warn', description: '' },
    { id: 'thing.note.type', severity: 'warn', description: '' },
    { id: 'thing.when.format', severity: 'warn', description: '' },
    { id: 'thing.when.invalid', severity: 'quarantine', description: '' },
    { id: 'thing.items.empty', severity: 'warn', description: '', since: 2 },
    { id: 'item.type', severity: 'quarantine', description: '' },
    { id: 'fallback', severity: 'quarantine', description: '' },
  ];
  const checker = new RecordChecker(
    schema,
    [
      { path: '', name: 'thing' },
      { path: 'items', name: 'item' },
    ],
    rules,
    'fallback',
  );
  const good = { id: 'x', kind: 'a', amount: 1, items: [{ code: 'c', size: 1 }] };
  const check = (record: unknown, schemaMajor?: number) =>
    checker.check(record, { rescue: true, schemaMajor });
  const ids = (record: unknown, schemaMajor?: number) =>
    check(record, schemaMajor).violations.map((v) => [v.ruleId, v.severity, v.path]);

  it('returns one shared empty result for a valid record', () => {
    expect(check(good)).toBe(check({ ...good }));
    expect(check(good)).toMatchObject({ violations: [], drift: [], quarantined: false });
  });
  it('names the most specific rule for each issue, with its path', () => {
    expect(ids({ ...good, id: '  ' })).toEqual([['thing.required', 'quarantine', 'id']]);
    expect(ids({ ...good, kind: 'c' })).toEqual([['thing.kind.enum', 'quarantine', 'kind']]);
    expect(ids({ ...good, amount: '12.5' })).toEqual([['thing.amount.numeric_string', 'warn', 'amount']]);
    expect(ids({ ...good, amount: 'lots' })).toEqual([['thing.type', 'quarantine', 'amount']]);
    expect(ids({ ...good, when: '12/31/2024' })).toEqual([['thing.when.format', 'warn', 'when']]);
    expect(ids({ ...good, when: '2024-02-30' })).toEqual([['thing.when.invalid', 'quarantine', 'when']]);
    expect(ids({ ...good, items: [{ code: 'c', size: 'big' }] })).toEqual([
      ['item.type', 'quarantine', 'items[0].size'],
    ]);
    expect(ids(null)).toEqual([['thing.type', 'quarantine', '$']]);
  });
  it('falls back to the fallback rule when no rule names the issue', () => {
    expect(ids({ ...good, items: [{ code: 'c', size: -1 }] })).toEqual([
      ['fallback', 'quarantine', 'items[0].size'],
    ]);
  });
  it('drops rules that start at a later schema version than the file has', () => {
    expect(ids({ ...good, items: [] }, 2)).toEqual([['thing.items.empty', 'warn', 'items']]);
    expect(ids({ ...good, items: [] }, 1)).toEqual([]);
    expect(ids({ ...good, items: [] })).toEqual([['thing.items.empty', 'warn', 'items']]);
  });
  it('quarantines on any quarantine rule, not on warnings alone', () => {
    expect(check({ ...good, amount: '1' }).quarantined).toBe(false);
    expect(check({ ...good, amount: '1', kind: 'z' }).quarantined).toBe(true);
  });
  it('reports unknown fields as drift and rescues them by the object they sit in', () => {
    const result = check({ ...good, extra: { deep: true }, items: [{ code: 'c', size: 1, colour: 'red' }] });
    expect(result.violations).toEqual([]);
    expect(result.drift).toEqual([
      { kind: 'unknown_field', path: 'items[0].colour', example: '"red"' },
      { kind: 'unknown_field', path: 'extra', example: '{"deep":true}' },
    ]);
    expect(result.rescued.get('')).toEqual({ extra: { deep: true } });
    expect(result.rescued.get('items[0]')).toEqual({ 'items[0].colour': 'red' });
  });
  it('reports wrong types as drift, and rescues mistyped optional values that only warn', () => {
    const result = check({ ...good, note: { text: 'n' } });
    expect(result.drift).toEqual([{ kind: 'wrong_type', path: 'note', example: '{"text":"n"}' }]);
    expect(result.violations.map((v) => v.ruleId)).toEqual(['thing.note.type']);
    expect(result.rescued.get('')).toEqual({ note: { text: 'n' } });
  });
  it('refuses a rules table without its fallback rule', () => {
    expect(() => new RecordChecker(schema, [{ path: '', name: 'thing' }], [], 'fallback')).toThrow(
      /fallback/,
    );
  });
});

describe('Function: jsonText', () => {
  it('writes what JSON.stringify writes, for random JSON values', () => {
    const random = seededRandom(14);
    const leaf = (): unknown => {
      const r = random();
      if (r < 0.2) return null;
      if (r < 0.4) return random() < 0.5;
      if (r < 0.7) return (random() - 0.5) * 10 ** Math.floor(random() * 30);
      return String.fromCharCode(
        ...Array.from({ length: Math.floor(random() * 6) }, () => Math.floor(random() * 0xffff)),
      );
    };
    const value = (depth: number): unknown => {
      if (depth === 0 || random() < 0.3) return leaf();
      const n = Math.floor(random() * 4);
      if (random() < 0.5) return Array.from({ length: n }, () => value(depth - 1));
      return Object.fromEntries(
        Array.from({ length: n }, (_, i) => [random() < 0.2 ? String(i) : `k${i}"\\`, value(depth - 1)]),
      );
    };
    for (let i = 0; i < 500; i++) {
      const v = value(6);
      expect(jsonTextIterative(v)).toBe(JSON.stringify(v));
      expect(jsonText(v)).toBe(JSON.stringify(v));
    }
  });

  it('leaves undefined members out of objects and writes them as null in arrays, as JSON.stringify does', () => {
    const v = { a: undefined, b: [undefined, 1], c: { d: undefined } };
    expect(jsonTextIterative(v)).toBe(JSON.stringify(v));
    expect(jsonTextIterative(undefined)).toBeUndefined();
  });

  it('writes values far deeper than JSON.stringify can (which overflows the stack)', () => {
    const depth = 100_000;
    const deep = JSON.parse(`${'[{"a":'.repeat(depth)}1${'}]'.repeat(depth)}`);
    expect(() => JSON.stringify(deep)).toThrow(RangeError);
    const text = jsonText(deep)!;
    expect(text.length).toBe(depth * 8 + 1);
    expect(text.startsWith('[{"a":[{"a":')).toBe(true);
    // The drift example and the _rescued text take the same way.
    expect(example(deep)).toBe(text.slice(0, EXAMPLE_MAX_CHARS));
    expect(rescuedJson(new Map([['', { deep }]]), '')).toBe(`{"deep":${text}}`);
  });
});
