import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatTable, LakeQueryError, openLakeQuery } from '../../shared/adapters/duckdb/lake-query.ts';
import { tempDir } from '../helpers/lake.ts';

/** Writes `SELECT …` as a Parquet file at `<lake>/<key>`. */
async function writeParquet(lakeDir: string, key: string, select: string): Promise<void> {
  const file = join(lakeDir, key);
  await mkdir(join(file, '..'), { recursive: true });
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  await connection.run(`COPY (${select}) TO '${file}' (FORMAT parquet)`);
  connection.closeSync();
  instance.closeSync();
}

describe('Function: openLakeQuery', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;

  beforeAll(async () => {
    tmp = await tempDir('sluice-lake-query-');
    const lake = tmp.dir;
    await writeParquet(
      lake,
      'silver/tic-in-network/rates/source=a/part-00000.parquet',
      `SELECT 'C1' AS code, 12.5::DOUBLE AS rate, DATE '2025-01-31' AS expires, ['26', 'TC'] AS modifiers,
              9007199254740993::BIGINT AS big, 1::BIGINT AS n`,
    );
    // A later source with a column the first lacks: the view reads both by name.
    await writeParquet(
      lake,
      'silver/tic-in-network/rates/source=b/part-00000.parquet',
      `SELECT 'C2' AS code, 3.0::DOUBLE AS rate, NULL::DATE AS expires, []::VARCHAR[] AS modifiers,
              NULL::BIGINT AS big, 2::BIGINT AS n, 'new' AS added`,
    );
    await writeParquet(
      lake,
      'silver/tic-in-network/providers/source=a/part-00000.parquet',
      `SELECT 1 AS npi`,
    );
    await writeParquet(lake, 'silver/other-ds/rates/source=a/part-00000.parquet', `SELECT 'X' AS code`);
    await writeParquet(
      lake,
      'silver/other-ds/_quarantine/source=a/part-00000.parquet',
      `SELECT 'r1' AS rule_id`,
    );
    // Folders without Parquet files are not tables.
    await mkdir(join(lake, 'silver/other-ds/_manifests'), { recursive: true });
    await mkdir(join(lake, 'silver/other-ds/empty/source=a'), { recursive: true });
  });
  afterAll(async () => tmp.cleanup());

  it('creates a view per table as <dataset>__<table>, and <table> alone when no other dataset has it', async () => {
    const lake = await openLakeQuery(tmp.dir);
    try {
      expect(lake.views()).toEqual([
        '_quarantine',
        'other_ds___quarantine',
        'other_ds__rates',
        'providers',
        'tic_in_network__providers',
        'tic_in_network__rates',
      ]);
      expect(await lake.query('SELECT npi FROM providers')).toEqual({ columns: ['npi'], rows: [[1]] });
      await expect(lake.query('SELECT * FROM rates')).rejects.toThrow(LakeQueryError);
    } finally {
      lake.close();
    }
  });

  it('reads every file of a table by name and returns plain values', async () => {
    const lake = await openLakeQuery(tmp.dir);
    try {
      const result = await lake.query(
        `SELECT code, rate, expires, modifiers, big, added, source, sum(n) OVER () AS total, 1.50::DECIMAL(5, 2) AS dec
         FROM tic_in_network__rates ORDER BY code`,
      );
      expect(result.columns).toEqual([
        'code',
        'rate',
        'expires',
        'modifiers',
        'big',
        'added',
        'source',
        'total',
        'dec',
      ]);
      expect(result.rows).toEqual([
        ['C1', 12.5, '2025-01-31', ['26', 'TC'], '9007199254740993', null, 'a', 3, 1.5],
        ['C2', 3, null, [], null, 'new', 'b', 3, 1.5],
      ]);
      expect(() => JSON.stringify(result.rows)).not.toThrow();
    } finally {
      lake.close();
    }
  });

  it('reports bad SQL with DuckDB’s message', async () => {
    const lake = await openLakeQuery(tmp.dir);
    try {
      await expect(lake.query('SELECT nope FROM providers')).rejects.toThrow(/nope/);
    } finally {
      lake.close();
    }
  });

  it('opens a lake without silver tables, with no views', async () => {
    const empty = await tempDir('sluice-lake-query-empty-');
    const lake = await openLakeQuery(empty.dir);
    expect(lake.views()).toEqual([]);
    expect((await lake.query('SELECT 42 AS answer')).rows).toEqual([[42]]);
    lake.close();
    await empty.cleanup();
  });
});

describe('Function: formatTable', () => {
  it('aligns columns, right-aligns numbers, shows NULL and lists, and counts rows', () => {
    const text = formatTable({
      columns: ['code', 'rate', 'tags'],
      rows: [
        ['C1', 12.5, ['a', 'b']],
        ['LONGER', null, []],
      ],
    });
    expect(text).toBe(
      [
        'code   | rate | tags',
        '-------+------+-------',
        'C1     | 12.5 | [a, b]',
        'LONGER | NULL | []',
        '(2 rows)',
      ].join('\n'),
    );
  });

  it('cuts long cells and keeps each row on one line', () => {
    const text = formatTable(
      { columns: ['note'], rows: [['x'.repeat(50)], ['two\nlines']] },
      { maxCellWidth: 10 },
    );
    expect(text.split('\n')).toEqual(['note', '----------', 'xxxxxxxxx…', 'two↵lines', '(2 rows)']);
  });

  it('renders an empty result', () => {
    expect(formatTable({ columns: ['a'], rows: [] })).toBe('a\n-\n(0 rows)');
  });
});
