import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { mergeParquetPartials } from '../../shared/adapters/duckdb/parquet-partials-merge.ts';
import {
  createParquetTableWriter,
  InvalidTableSpecError,
} from '../../shared/adapters/duckdb/parquet-table-writer.ts';
import type { Row, TableSpec } from '../../shared/contracts/silver/table.ts';
import { InvalidRowError, UnknownTableError } from '../../shared/ports/table-writer.ts';
import { listFiles, tempDir } from '../helpers/lake.ts';
import { seededRandom as random } from '../helpers/random.ts';

/** One column of every ColumnType; `id` is the key. */
const everyType: TableSpec = {
  name: 'every_type',
  description: 'one column of each type',
  key: ['id'],
  columns: [
    { name: 'id', type: 'BIGINT', nullable: false },
    { name: 'name', type: 'VARCHAR' },
    { name: 'amount', type: 'DOUBLE' },
    { name: 'active', type: 'BOOLEAN' },
    { name: 'day', type: 'DATE' },
    { name: 'at', type: 'TIMESTAMP' },
    { name: 'tags', type: 'VARCHAR[]' },
    { name: 'codes', type: 'BIGINT[]' },
    { name: 'rates', type: 'DOUBLE[]' },
  ],
};

const emptyTable: TableSpec = {
  name: 'never_used',
  description: 'gets no rows',
  key: ['k'],
  columns: [{ name: 'k', type: 'VARCHAR' }],
};

const lineage = (index: number, part = 'bronze/ds/part-00001.ndjson.gz', run = 'run-1') => ({
  _run_id: run,
  _bronze_part: part,
  _record_index: index,
});

function shuffled<T>(items: readonly T[], seed: number): T[] {
  const next = random(seed);
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [copy[i], copy[j]] = [copy[j]!, copy[i]!];
  }
  return copy;
}

describe('Function: createParquetTableWriter', () => {
  let reader: { query: (sql: string) => Promise<Record<string, unknown>[]>; close: () => void };
  let tmp: Awaited<ReturnType<typeof tempDir>>;

  beforeAll(async () => {
    const instance = await DuckDBInstance.create(':memory:');
    const connection = await instance.connect();
    reader = {
      query: async (sql) =>
        (await connection.runAndReadAll(sql)).getRowObjectsJS() as Record<string, unknown>[],
      close: () => {
        connection.closeSync();
        instance.closeSync();
      },
    };
  });
  afterAll(() => reader.close());
  beforeEach(async () => {
    tmp = await tempDir('sluice-parquet-writer-');
  });
  afterEach(async () => tmp.cleanup());

  it('writes every column type, nulls and empty lists included, as standard Parquet types', async () => {
    const writer = await createParquetTableWriter([everyType, emptyTable], tmp.dir);
    writer.append('every_type', {
      id: 1,
      name: 'héllo, "world"',
      amount: 12.5,
      active: true,
      day: '2024-02-29',
      at: '2024-03-01T12:34:56.789123Z',
      tags: ['a', 'b'],
      codes: [1, 9007199254740993n],
      rates: [0.25, -1],
      ...lineage(0),
    });
    writer.append('every_type', {
      id: 2,
      name: null,
      amount: null,
      active: false,
      day: null,
      at: '2024-03-01 14:34+02:00',
      tags: [],
      codes: [],
      rates: [null, 3],
      ...lineage(1),
    });
    // Missing columns are null.
    writer.append('every_type', { id: 3n, ...lineage(2) });
    const results = await writer.finish();

    const file = join(tmp.dir, 'every_type.parquet');
    expect(results).toEqual({
      every_type: { rowsIn: 3, rowsWritten: 3, duplicates: 0, file },
      never_used: { rowsIn: 0, rowsWritten: 0, duplicates: 0 },
    });
    expect(await listFiles(tmp.dir)).toEqual(['every_type.parquet']);

    const types = await reader.query(
      `SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet('${file}'))`,
    );
    expect(Object.fromEntries(types.map((t) => [t.column_name, t.column_type]))).toEqual({
      id: 'BIGINT',
      name: 'VARCHAR',
      amount: 'DOUBLE',
      active: 'BOOLEAN',
      day: 'DATE',
      at: 'TIMESTAMP',
      tags: 'VARCHAR[]',
      codes: 'BIGINT[]',
      rates: 'DOUBLE[]',
      _run_id: 'VARCHAR',
      _bronze_part: 'VARCHAR',
      _record_index: 'BIGINT',
    });
    // The Parquet logical types, which Athena and Spark read: DATE, TIMESTAMP, STRING, LIST.
    const schema = await reader.query(
      `SELECT name, type, converted_type, logical_type FROM parquet_schema('${file}') WHERE name IN ('day', 'at', 'name', 'tags')`,
    );
    expect(Object.fromEntries(schema.map((s) => [s.name, s.converted_type]))).toEqual({
      name: 'UTF8',
      day: 'DATE',
      at: 'TIMESTAMP_MICROS',
      tags: 'LIST',
    });

    const rows = await reader.query(
      `SELECT id, name, amount, active, strftime(day, '%Y-%m-%d') AS day, strftime("at", '%Y-%m-%dT%H:%M:%S.%f') AS "at",
              tags, codes, rates, _record_index FROM read_parquet('${file}')`,
    );
    expect(rows).toEqual([
      {
        id: 1n,
        name: 'héllo, "world"',
        amount: 12.5,
        active: true,
        day: '2024-02-29',
        at: '2024-03-01T12:34:56.789123',
        tags: ['a', 'b'],
        codes: [1n, 9007199254740993n],
        rates: [0.25, -1],
        _record_index: 0n,
      },
      {
        id: 2n,
        name: null,
        amount: null,
        active: false,
        day: null,
        at: '2024-03-01T12:34:00.000000',
        tags: [],
        codes: [],
        rates: [null, 3],
        _record_index: 1n,
      },
      {
        id: 3n,
        name: null,
        amount: null,
        active: null,
        day: null,
        at: null,
        tags: null,
        codes: null,
        rates: null,
        _record_index: 2n,
      },
    ]);
  });

  it('keeps list values exact whichever way they travel (joined text or element by element)', async () => {
    // Lists that join and split back exactly travel as text; the rest element by element. Both must
    // arrive unchanged, mixed within one data chunk.
    const lists: { tags: unknown; codes: unknown; rates: unknown }[] = [
      { tags: ['a', 'b'], codes: [1, -2, 0], rates: [0.1 + 0.2, 5e-324, 1e21, -1.5e-7] },
      { tags: ['a\u001fb', 'c'], codes: [Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER], rates: [-0] },
      { tags: [''], codes: [9007199254740993n], rates: [Number.NaN, Number.POSITIVE_INFINITY] },
      { tags: ['', ''], codes: [null, 1], rates: [Number.NEGATIVE_INFINITY, 2] },
      { tags: ['x', ''], codes: [], rates: [] },
      { tags: ['', 'y', 'ünï,cödé "q"', '[1, 2]'], codes: [7], rates: [null] },
      { tags: [null, 'z'], codes: null, rates: [3] },
      { tags: [], codes: [-0], rates: null },
    ];
    const writer = await createParquetTableWriter([everyType], tmp.dir);
    for (const [i, row] of lists.entries()) writer.append('every_type', { id: i, ...row, ...lineage(i) });
    const { every_type: result } = await writer.finish();
    const rows = await reader.query(`SELECT tags, codes, rates FROM read_parquet('${result?.file}')`);
    // toEqual compares numbers with Object.is: -0 is not 0, NaN is NaN.
    expect(rows).toEqual(
      lists.map((l) => ({
        tags: l.tags,
        codes: (l.codes as unknown[] | null)?.map((c) => (c === null ? null : BigInt(c as number))) ?? null,
        rates: l.rates,
      })),
    );
  });

  it('keeps texts and integers exact whichever way their batch travels (joined or value by value)', async () => {
    // A batch of texts travels joined by U+001E with null as a lone U+001D, unless a value would not
    // split back; integers travel as doubles unless one is not safe. Each odd value below sends its
    // whole batch the exact way, next to batches that go the fast way.
    const odd: { name: string | null; id: number | bigint }[] = [
      { name: 'a\u001eb', id: 1 },
      { name: '\u001d', id: 2 },
      { name: 'x\u001dy\u001fz', id: 3 },
      { name: '', id: 4 },
      { name: null, id: 5 },
      { name: '\u001e', id: 2n ** 62n },
      { name: 'ünï "q", [1]', id: -(2n ** 63n) },
    ];
    const rows: { name: string | null; id: number | bigint }[] = [];
    for (const [i, row] of odd.entries()) {
      rows.push(row);
      for (let j = 1; j < 300; j++)
        rows.push({ name: j % 3 === 0 ? null : j % 5 === 0 ? '' : `n${i}-${j}`, id: i * 10_000 + j });
    }
    const writer = await createParquetTableWriter([{ ...everyType, key: [] }], tmp.dir);
    for (const [i, row] of rows.entries()) writer.append('every_type', { ...row, ...lineage(i) });
    const { every_type: result } = await writer.finish();
    const written = await reader.query(`SELECT name, id FROM read_parquet('${result?.file}')`);
    expect(written).toEqual(rows.map((r) => ({ name: r.name, id: BigInt(r.id) })));
  });

  it('sends a batch the exact way for a list element that holds a separator, alone in an otherwise plain batch', async () => {
    // One odd list per batch of 64, so nothing else in its batch forces the exact way.
    const odd: (string | null)[][] = [
      ['a\u001eb'],
      ['\u001d'],
      ['x\u001dy', 'z'],
      ['p', 'q\u001fr'],
      ['\u001e'],
    ];
    const rows: { tags: (string | null)[] | null }[] = [];
    for (const tags of odd) {
      rows.push({ tags });
      for (let j = 1; j < 64; j++) rows.push({ tags: j % 9 === 0 ? null : [`t${j}`, 'u'] });
    }
    const writer = await createParquetTableWriter([{ ...everyType, key: [] }], tmp.dir);
    for (const [i, row] of rows.entries()) writer.append('every_type', { id: i, ...row, ...lineage(i) });
    const { every_type: result } = await writer.finish();
    const written = await reader.query(`SELECT tags FROM read_parquet('${result?.file}')`);
    expect(written).toEqual(rows);
  });

  it('keeps batches of one text throughout, of nulls only, and batches that differ in one row apart', async () => {
    // A batch of 64 rows whose text is one value throughout is staged once and repeated, one of nulls
    // only is staged as nothing; a single different row (or a null, or an empty text) in an otherwise
    // constant batch must keep it the ordinary way. Batches run 64 rows from the first.
    const names: (string | null)[] = [];
    const tags: (string[] | null)[] = [];
    const batch = (name: (j: number) => string | null, tag: (j: number) => string[] | null) => {
      for (let j = 0; j < 64; j++) {
        names.push(name(j));
        tags.push(tag(j));
      }
    };
    batch(
      () => 'same',
      () => null,
    );
    batch(
      () => null,
      (j) => (j === 63 ? ['last'] : null),
    );
    batch(
      (j) => (j === 17 ? 'other' : 'same'),
      () => ['a', 'b'],
    );
    batch(
      (j) => (j === 0 ? null : 'same'),
      (j) => (j === 0 ? [] : null),
    );
    batch(
      () => '',
      () => null,
    );
    batch(
      (j) => (j === 40 ? '' : '\u001d'),
      () => null,
    );
    names.push('tail');
    tags.push(null);
    const writer = await createParquetTableWriter([{ ...everyType, key: [] }], tmp.dir);
    for (const [i, name] of names.entries()) {
      writer.append('every_type', { id: i, name, tags: tags[i], ...lineage(i, i < 200 ? 'p1' : 'p2') });
    }
    const { every_type: result } = await writer.finish();
    const written = await reader.query(
      `SELECT name, tags, _bronze_part FROM read_parquet('${result?.file}')`,
    );
    expect(written).toEqual(
      names.map((name, i) => ({ name, tags: tags[i], _bronze_part: i < 200 ? 'p1' : 'p2' })),
    );
  });

  it('round-trips random rows exactly, separators and edge values included, whichever way each batch goes', async () => {
    // Values drawn from what breaks the joined form (its three separators, lone ones, empty texts,
    // unsafe integers, -0, NaN, nulls in lists) mixed with plain ones, so batches go both ways.
    const next = random(42);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!;
    const chars = ['a', 'b', 'ü', ',', ' ', '"', '\u001d', '\u001e', '\u001f'];
    const rare = () => next() < 0.02;
    const text = () =>
      Array.from({ length: rare() ? 0 : 1 + Math.floor(next() * 3) }, () =>
        rare() ? pick(chars) : pick(['a', 'b', 'ü', ',']),
      ).join('');
    const integer = (): number | bigint =>
      rare() ? pick([2n ** 60n, -(2n ** 63n), -0]) : Math.floor(next() * 2e6) - 1e6;
    const double = () => (rare() ? pick([-0, Number.NaN, Number.POSITIVE_INFINITY, 5e-324]) : next() * 100);
    const maybe = <T>(value: () => T): T | null => (next() < 0.1 ? null : value());
    const list = <T>(item: () => T) =>
      maybe(() => Array.from({ length: Math.floor(next() * 4) }, () => (next() < 0.001 ? null : item())));
    const rows = Array.from({ length: 3000 }, () => ({
      id: integer(),
      name: maybe(text),
      amount: maybe(double),
      active: maybe(() => next() < 0.5),
      tags: list(text),
      codes: list(integer),
      rates: list(double),
    }));
    const writer = await createParquetTableWriter([{ ...everyType, key: [] }], tmp.dir);
    for (const [i, row] of rows.entries()) writer.append('every_type', { ...row, ...lineage(i) });
    const { every_type: result } = await writer.finish();
    const written = await reader.query(
      `SELECT id, name, amount, active, tags, codes, rates FROM read_parquet('${result?.file}')`,
    );
    const big = (v: number | bigint | null) => (v === null ? null : BigInt(v));
    // toEqual compares numbers with Object.is: -0 is not 0, NaN is NaN.
    expect(written).toEqual(rows.map((r) => ({ ...r, id: big(r.id), codes: r.codes?.map(big) ?? null })));
  });

  it('keeps every value across many batches and data chunks', async () => {
    const n = 2048 * 3 + 17;
    const writer = await createParquetTableWriter([everyType], tmp.dir);
    for (let i = 0; i < n; i++) {
      writer.append('every_type', {
        id: i,
        name: i % 5 === 0 ? null : `name-${i}`,
        amount: i / 4,
        active: i % 3 === 0,
        day: `2024-01-${String((i % 28) + 1).padStart(2, '0')}`,
        tags: i % 7 === 0 ? null : Array.from({ length: i % 4 }, (_, j) => `t${i}-${j}`),
        codes: [i, -i],
        ...lineage(i),
      });
    }
    const { every_type: result } = await writer.finish();
    expect(result?.rowsWritten).toBe(n);
    const [check] = await reader.query(`
      SELECT count(*) FILTER (WHERE name IS DISTINCT FROM CASE WHEN id % 5 = 0 THEN NULL ELSE 'name-' || id END) AS bad_names,
             count(*) FILTER (WHERE amount <> id / 4) AS bad_amounts,
             count(*) FILTER (WHERE active <> (id % 3 = 0)) AS bad_flags,
             count(*) FILTER (WHERE day <> DATE '2024-01-01' + CAST(id % 28 AS INTEGER)) AS bad_days,
             count(*) FILTER (WHERE tags IS DISTINCT FROM CASE WHEN id % 7 = 0 THEN NULL
                 ELSE list_transform(range(id % 4), j -> 't' || id || '-' || j) END) AS bad_tags,
             count(*) FILTER (WHERE codes <> [id, -id]) AS bad_codes,
             count(*) FILTER (WHERE _record_index <> id) AS bad_lineage,
             bool_and(id = row_number) AS sorted
      FROM (SELECT *, row_number() OVER () - 1 AS row_number FROM read_parquet('${result?.file}'))`);
    expect(check).toEqual({
      bad_names: 0n,
      bad_amounts: 0n,
      bad_flags: 0n,
      bad_days: 0n,
      bad_tags: 0n,
      bad_codes: 0n,
      bad_lineage: 0n,
      sorted: true,
    });
  });

  it('drops duplicates by key, keeping the lowest _record_index, then the lowest _bronze_part', async () => {
    const writer = await createParquetTableWriter([everyType], tmp.dir);
    writer.append('every_type', { id: 1, name: 'later record', ...lineage(5, 'part-00001') });
    writer.append('every_type', { id: 1, name: 'later part', ...lineage(2, 'part-00002') });
    writer.append('every_type', { id: 1, name: 'kept', ...lineage(2, 'part-00001') });
    writer.append('every_type', { id: 2, name: 'only', ...lineage(9, 'part-00009') });
    writer.append('every_type', { id: 3, name: 'kept too', ...lineage(0, 'part-00003') });
    writer.append('every_type', { id: 3, name: 'dropped', ...lineage(1, 'part-00000') });
    const { every_type: result } = await writer.finish();
    expect(result).toMatchObject({ rowsIn: 6, rowsWritten: 3, duplicates: 3 });
    const rows = await reader.query(`SELECT id, name FROM read_parquet('${result?.file}')`);
    expect(rows).toEqual([
      { id: 1n, name: 'kept' },
      { id: 2n, name: 'only' },
      { id: 3n, name: 'kept too' },
    ]);
  });

  it('writes the same bytes whether given every row or merging partial files split anywhere; survivors do not depend on order', async () => {
    const keyless: TableSpec = {
      name: 'keyless',
      description: 'no key: several rows per record',
      key: [],
      columns: [
        { name: 'v', type: 'VARCHAR' },
        { name: 'xs', type: 'DOUBLE[]' },
      ],
    };
    const tables = [everyType, keyless];
    const rows: [string, Row][] = [];
    for (let i = 0; i < 3000; i++) {
      // Rows i and i + 2000 share key and lineage, so the survivor must be chosen by content.
      const part = `p${Math.floor(i / 1000) % 2}`;
      rows.push([
        'every_type',
        { id: i % 1000, name: `n${i % 13}`, amount: i % 7, ...lineage(i % 500, part) },
      ]);
      rows.push(['keyless', { v: `v${i % 11}`, xs: i % 4 ? [i % 5, 1] : [], ...lineage(i % 50) }]);
    }
    const bytesOf = (files: (string | undefined)[]) =>
      Promise.all(files.map(async (f) => (await readFile(f!)).toString('base64'))).then((b) => b.join('|'));

    const whole = await createParquetTableWriter(tables, join(tmp.dir, 'whole'));
    for (const [table, row] of rows) whole.append(table, row);
    const one = await whole.finish();
    expect(one.every_type).toMatchObject({ rowsIn: 3000, rowsWritten: 1000, duplicates: 2000 });
    expect(one.keyless).toMatchObject({ rowsIn: 3000, rowsWritten: 3000, duplicates: 0 });
    const expected = await bytesOf([one.every_type?.file, one.keyless?.file]);

    for (const seed of [1, 2, 3]) {
      // The rows in order, cut into partial files at random places, then merged.
      const next = random(seed);
      const cuts = [0, ...[1, 2, 3].map(() => Math.floor(next() * rows.length)).sort((a, b) => a - b)];
      const partials: Record<string, string[]> = { every_type: [], keyless: [] };
      for (const [n, start] of cuts.entries()) {
        const writer = await createParquetTableWriter(tables, join(tmp.dir, `s${seed}-${n}`), {
          partial: true,
        });
        for (const [table, row] of rows.slice(start, cuts[n + 1] ?? rows.length)) writer.append(table, row);
        for (const [table, result] of Object.entries(await writer.finish())) {
          if (result.file) partials[table]!.push(result.file);
        }
      }
      const merged = await mergeParquetPartials(tables, partials, join(tmp.dir, `merged-${seed}`));
      expect(merged.every_type?.rowsWritten).toBe(1000);
      expect(await bytesOf([merged.every_type?.file, merged.keyless?.file])).toBe(expected);

      // Shuffled: rows land in another order, but the same rows survive.
      const shuffledWriter = await createParquetTableWriter(tables, join(tmp.dir, `shuffled-${seed}`));
      for (const [table, row] of shuffled(rows, seed)) shuffledWriter.append(table, row);
      const results = await shuffledWriter.finish();
      for (const table of ['every_type', 'keyless'] as const) {
        const sorted = (file: string | undefined) =>
          reader.query(`SELECT * FROM read_parquet('${file}') ORDER BY ALL`);
        expect(await sorted(results[table]?.file)).toEqual(await sorted(one[table]?.file));
      }
    }
  });

  it('keeps the rows in the order appended (no sort)', async () => {
    const writer = await createParquetTableWriter([everyType], tmp.dir);
    const ids = [5, 3, 9, 1, 7];
    for (const [index, id] of ids.entries()) writer.append('every_type', { id, ...lineage(index) });
    const { every_type: result } = await writer.finish();
    const rows = await reader.query(`SELECT id FROM read_parquet('${result?.file}')`);
    expect(rows.map((r) => Number(r.id))).toEqual(ids);
  });

  it('rejects a value that does not fit its column, naming table, column and value, and keeps going', async () => {
    const writer = await createParquetTableWriter([everyType], tmp.dir);
    const attempt = (row: Row) => () => writer.append('every_type', { id: 1, ...lineage(0), ...row });
    expect(attempt({ id: 'abc' })).toThrow(InvalidRowError);
    expect(attempt({ id: 'abc' })).toThrow(
      'silver table "every_type", column "id": BIGINT expects an integer (number or bigint), got "abc" (string)',
    );
    expect(attempt({ id: 1.5 })).toThrow('column "id": BIGINT expects an integer, got 1.5 (number)');
    expect(attempt({ id: 2 ** 60 })).toThrow('pass a bigint');
    expect(attempt({ amount: '1.5' })).toThrow(
      'column "amount": DOUBLE expects a number, got "1.5" (string)',
    );
    expect(attempt({ active: 'yes' })).toThrow('column "active": BOOLEAN expects a boolean');
    expect(attempt({ day: '2023-02-29' })).toThrow(
      'column "day": DATE expects a date as YYYY-MM-DD text, got "2023-02-29"',
    );
    expect(attempt({ at: '2024-01-01T25:00:00Z' })).toThrow(
      'column "at": TIMESTAMP expects an ISO 8601 timestamp',
    );
    expect(attempt({ tags: 'a' })).toThrow('column "tags": VARCHAR[] expects an array');
    expect(attempt({ codes: [1, 'x'] })).toThrow('column "codes": BIGINT[] element [1] expects an integer');
    expect(attempt({ id: null })).toThrow('column "id": column is not nullable, got null (null)');
    expect(attempt({ _run_id: undefined })).toThrow('column "_run_id": column is not nullable');
    expect(attempt({ colour: 'red' })).toThrow(
      'column "colour": no such column in the table spec, got "red"',
    );
    expect(() => writer.append('nope', {})).toThrow(UnknownTableError);
    expect(() => writer.append('nope', {})).toThrow('no silver table named "nope" (tables: every_type)');

    attempt({ name: 'good' })();
    const { every_type: result } = await writer.finish();
    expect(result).toMatchObject({ rowsIn: 1, rowsWritten: 1 });
    expect(await reader.query(`SELECT id, name FROM read_parquet('${result?.file}')`)).toEqual([
      { id: 1n, name: 'good' },
    ]);
  });

  it('refuses a table spec it cannot write', async () => {
    const bad = (spec: Partial<TableSpec>) => createParquetTableWriter([{ ...everyType, ...spec }], tmp.dir);
    await expect(bad({ name: '../escape' })).rejects.toThrow(InvalidTableSpecError);
    await expect(bad({ key: ['missing'] })).rejects.toThrow('key column missing is not a column');
    await expect(bad({ columns: [{ name: '_run_id', type: 'VARCHAR' }] })).rejects.toThrow('lineage column');
    // Specs can come from outside TypeScript (a contract built from config): types are checked at run time.
    const money = { columns: [{ name: 'price', type: 'MONEY' as never }] };
    await expect(bad(money)).rejects.toThrow('column price has unknown type MONEY');
    const inherited = { columns: [{ name: 'x', type: 'toString' as never }] };
    await expect(bad(inherited)).rejects.toThrow('column x has unknown type toString');
    await expect(createParquetTableWriter([everyType, everyType], tmp.dir)).rejects.toThrow('declared twice');
    // A list keeps its exact values in `<name>#exact` of the partial files.
    const clash = { columns: [...everyType.columns, { name: 'tags#exact', type: 'VARCHAR' as const }] };
    await expect(bad(clash)).rejects.toThrow("column tags#exact clashes with a list's exact column");
  });

  it('leaves no Parquet file and no spill behind when aborted, and accepts nothing afterwards', async () => {
    const writer = await createParquetTableWriter([everyType], tmp.dir);
    for (let i = 0; i < 5000; i++) writer.append('every_type', { id: i, ...lineage(i) });
    await writer.abort();
    await writer.abort();
    expect(await listFiles(tmp.dir)).toEqual([]);
    expect(() => writer.append('every_type', { id: 1, ...lineage(0) })).toThrow('table writer is aborted');
    await expect(writer.finish()).rejects.toThrow('table writer is aborted');
  });

  it('undoes a finish that is still running when aborted', async () => {
    const writer = await createParquetTableWriter([everyType], tmp.dir);
    for (let i = 0; i < 5000; i++) writer.append('every_type', { id: i, ...lineage(i) });
    const finishing = writer.finish();
    await writer.abort();
    await finishing;
    expect(await listFiles(tmp.dir)).toEqual([]);
  });

  it('keeps its files when aborted after a successful finish, and cannot finish twice', async () => {
    const writer = await createParquetTableWriter([everyType], tmp.dir, { memoryLimit: '64MB' });
    writer.append('every_type', { id: 1, ...lineage(0) });
    const { every_type: result } = await writer.finish();
    await expect(writer.finish()).rejects.toThrow('table writer is finished');
    await writer.abort();
    expect(existsSync(result!.file!)).toBe(true);
    expect(await listFiles(tmp.dir)).toEqual(['every_type.parquet']);
  });
});
