import { describe, expect, it } from 'vitest';
import { parseDatasetConfig } from '../../shared/contracts/dataset-config.ts';
import { parseExact } from '../../shared/contracts/exact-json.ts';
import { genericContract } from '../../shared/contracts/generic-contract.ts';

const context = { runId: 'run', sourceUri: 'file:///x', sourceSha256: '0', headers: {} };

function contractFor(format: 'ndjson' | 'csv') {
  return genericContract(
    parseDatasetConfig({
      name: 'values',
      format,
      silver: {
        table: 'values',
        columns: [
          { name: 'id', type: 'string' },
          { name: 'n', type: 'integer' },
          { name: 'x', type: 'number' },
          { name: 'ns', type: 'integer[]' },
        ],
        primaryKey: ['id'],
        load: 'append',
        onDrift: 'rescue',
      },
    }),
  );
}

const normalize = (format: 'ndjson' | 'csv', text: string) =>
  contractFor(format).normalize('records', 0, parseExact(text), context);

describe('genericContract: values at the edges', () => {
  it('takes a long decimal where an object is expected for what it is: a number of the wrong type, not an object', () => {
    const contract = genericContract(
      parseDatasetConfig({
        name: 'nested-decimal',
        format: 'ndjson',
        silver: {
          table: 't',
          columns: [{ name: 'b', type: 'string', source: 'a.b' }],
          load: 'append',
          onDrift: 'rescue',
        },
      }),
    );
    const parse = (text: string) => parseExact(text, 0, { decimals: true });
    const long = contract.normalize('records', 0, parse('{"a":1.00000000000000000001}'), context);
    const short = contract.normalize('records', 0, parse('{"a":1.5}'), context);
    expect(long.drift.map((d) => [d.kind, d.path])).toEqual([['wrong_type', 'a']]);
    expect(long.drift.map((d) => [d.kind, d.path])).toEqual(short.drift.map((d) => [d.kind, d.path]));
    expect(long.rows.t).toEqual([expect.objectContaining({ b: null })]);
  });

  it('warns of a nested field spelled in another case (plan.ID for plan.id)', () => {
    const contract = genericContract(
      parseDatasetConfig({
        name: 'nested',
        format: 'ndjson',
        silver: {
          table: 'plans',
          columns: [{ name: 'plan_id', type: 'string', source: 'plan.id' }],
          load: 'append',
        },
      }),
    );
    const result = contract.normalize('records', 0, { plan: { ID: 'p1' } }, context);
    expect(result.rows.plans).toEqual([expect.objectContaining({ plan_id: null })]);
    expect(result.violations).toEqual([
      expect.objectContaining({ ruleId: 'plans.plan_id.misnamed', severity: 'warn', path: 'plan.id' }),
    ]);
  });

  it.each(['csv', 'ndjson'] as const)(
    'warns, in %s, of a column whose field the record spells in another case (X for x): it reads null, not silently',
    (format) => {
      const result = normalize(format, '{"id":"a","X":"1.5"}');
      expect(result.rows.values).toEqual([expect.objectContaining({ id: 'a', x: null })]);
      const misnamed = result.violations.find((v) => v.ruleId === 'values.x.misnamed');
      expect(misnamed).toMatchObject({ severity: 'warn', path: 'x' });
      expect(misnamed!.message).toContain('no field "x", but the record has "X"');
      expect(misnamed!.message).toContain('"source": "X"');
      // A field simply absent is no such finding; nor is one present under its own name.
      expect(normalize(format, '{"id":"a"}').violations.map((v) => v.ruleId)).not.toContain(
        'values.x.misnamed',
      );
    },
  );

  it('warns of a JSON record that holds none of the columns (userId for user_id): on main a row of NULLs with a clean score', () => {
    const events = (format: 'ndjson' | 'csv') =>
      genericContract(
        parseDatasetConfig({
          name: 'events',
          format,
          silver: {
            table: 'events',
            columns: [
              { name: 'user_id', type: 'integer' },
              { name: 'amount', type: 'number', source: 'payment.amount' },
            ],
          },
        }),
      );
    const run = (format: 'ndjson' | 'csv', record: object) =>
      events(format).normalize('records', 0, record, context);
    const result = run('ndjson', { userId: 1, payment: { amt: 5 } });
    expect(result.rows.events).toEqual([expect.objectContaining({ user_id: null, amount: null })]);
    const none = result.violations.filter((v) => v.ruleId === 'events.no_columns');
    expect(none.map((v) => [v.severity, v.path])).toEqual([['warn', '$']]);
    expect(none[0]!.message).toContain('holds none of the columns\' sources (["user_id","payment.amount"])');
    expect(none[0]!.message).toContain('its fields are ["userId","payment"]');
    // One column is enough (the others may be optional fields), and a CSV row is judged per cell (`absent`).
    expect(run('ndjson', { user_id: null }).violations).toEqual([]);
    expect(run('csv', { other: '1' }).violations.map((v) => v.ruleId)).not.toContain('events.no_columns');
  });

  it('quarantines a CSV row that repeats the header row (cat a.csv b.csv): on main a row of names with a clean score', () => {
    const result = normalize('csv', '{"id":"id","n":"n","x":"x","ns":"ns"}');
    expect(result.rows).toEqual({});
    expect(result.violations.map((v) => [v.ruleId, v.severity])).toEqual([
      ['values.header_repeated', 'quarantine'],
    ]);
    expect(result.violations[0]!.message).toContain('repeats the header row (["id","n","x","ns"])');
    // A value that is its column's name is a value; so is the name in one column of the row only.
    expect(normalize('csv', '{"id":"id","n":"2"}').rows.values).toEqual([
      expect.objectContaining({ id: 'id', n: 2 }),
    ]);
    expect(normalize('ndjson', '{"id":"id","ns":"ns"}').violations.map((v) => v.ruleId)).not.toContain(
      'values.header_repeated',
    );
  });

  it('warns of a CSV row without a cell for a column (a row shorter than the header): it reads null, not silently', () => {
    // `1,Ann Smith<LF>Jr,10` with an unquoted line break: two short rows, each read as complete on main.
    const result = normalize('csv', '{"id":"1","n":"2"}');
    expect(result.rows.values).toEqual([expect.objectContaining({ id: '1', n: 2, x: null, ns: null })]);
    const absent = result.violations.filter((v) => v.ruleId.endsWith('.absent'));
    expect(absent.map((v) => [v.ruleId, v.severity, v.path])).toEqual([
      ['values.x.absent', 'warn', 'x'],
      ['values.ns.absent', 'warn', 'ns'],
    ]);
    expect(absent[0]!.message).toContain('the row has no cell for "x" (it is shorter than the header row');
    // A blank cell is a cell: NULL is what the file says. A JSON record may lack an optional field.
    expect(normalize('csv', '{"id":"1","n":"2","x":"","ns":""}').violations).toEqual([]);
    expect(normalize('ndjson', '{"id":"1"}').violations).toEqual([]);
    expect(contractFor('csv').rules.map((r) => r.id)).toContain('values.x.absent');
    expect(contractFor('ndjson').rules.map((r) => r.id)).not.toContain('values.x.absent');
  });

  it('warns of a CSV row with more cells than the header (cells shifted by an unquoted delimiter)', () => {
    // `1,Smith, John` under `id,owner`: owner reads "Smith", and on main the run passed at quality 100.
    const result = normalize('csv', '{"id":"1","n":"2","x":"","ns":"","_extra":["3"]}');
    expect(result.rows.values).toEqual([expect.objectContaining({ id: '1', n: 2 })]);
    const extra = result.violations.filter((v) => v.ruleId === 'values.extra_cells');
    expect(extra).toEqual([expect.objectContaining({ severity: 'warn', path: '_extra' })]);
    expect(extra[0]!.message).toContain('the row has 1 more cell(s) than the header row (["3"])');
    // An NDJSON record may have a field named _extra: it is a field like any other.
    expect(normalize('ndjson', '{"id":"1","_extra":["3"]}').violations.map((v) => v.ruleId)).not.toContain(
      'values.extra_cells',
    );
  });

  it('writes an integer beyond 2^53 into a text column and a BIGINT column digit for digit', () => {
    const result = normalize(
      'ndjson',
      '{"id":9007199254740993,"n":-9223372036854775808,"ns":[9007199254740993]}',
    );
    expect(result.rows.values).toEqual([
      expect.objectContaining({ id: '9007199254740993', n: -9223372036854775808n, ns: [9007199254740993n] }),
    ]);
    // The number written as text is counted, as any other type conversion.
    expect(result.violations.map((v) => v.ruleId)).toEqual(['values.id.coerced']);
  });

  it('quarantines an integer beyond 64 bits instead of rounding it', () => {
    const result = normalize('ndjson', '{"id":"a","n":9223372036854775808}');
    expect(result.rows).toEqual({});
    expect(result.violations).toEqual([
      expect.objectContaining({ ruleId: 'values.n.type', severity: 'quarantine', path: 'n' }),
    ]);
    expect(result.violations[0]!.message).toContain('beyond the range of a 64-bit integer');
  });

  it.each([
    ['a JSON number', 'ndjson', '{"id":"a","x":1e400}'],
    ['a negative JSON number', 'ndjson', '{"id":"a","x":-1e400}'],
    ['a numeric string', 'ndjson', '{"id":"a","x":"1e400"}'],
    ['a CSV cell', 'csv', '{"id":"a","n":"","x":"1e400","ns":""}'],
  ] as const)('quarantines 1e400 as %s with its path and reason', (_what, format, text) => {
    const result = normalize(format, text);
    expect(result.rows).toEqual({});
    expect(result.violations).toEqual([
      expect.objectContaining({ ruleId: 'values.x.type', severity: 'quarantine', path: 'x' }),
    ]);
    expect(result.violations[0]!.message).toContain('beyond the double range');
  });

  it('stores the nearest double of an integer beyond 2^53 in a DOUBLE column, as its type says', () => {
    const result = normalize('ndjson', '{"id":"a","x":9007199254740993}');
    expect(result.rows.values?.[0]?.x).toBe(9007199254740992);
  });

  it('rescues unknown fields with their exact digits, __proto__ included', () => {
    const result = normalize(
      'ndjson',
      '{"id":"a","__proto__":12345678901234567890,"extra":[9007199254740993]}',
    );
    expect(result.rows.values?.[0]?._rescued).toBe(
      '{"__proto__":12345678901234567890,"extra":[9007199254740993]}',
    );
    expect(result.drift.map((d) => [d.path, d.example])).toEqual([
      ['__proto__', '12345678901234567890'],
      ['extra', '[9007199254740993]'],
    ]);
  });
});
