import { spawnSync } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatTable, InvalidQueryError, openLakeQuery } from '../../shared/adapters/duckdb/lake-query.ts';
import { FileObjectStore } from '../../shared/adapters/local/file-object-store.ts';
import { ticInNetworkSilver } from '../../shared/contracts/datasets/tic-in-network.silver.ts';
import { storedColumns } from '../../shared/contracts/silver/table.ts';
import { commitSourceVersion, type SourceVersionRecord } from '../../shared/lake/source-commits.ts';
import { quarantineTable } from '../../shared/stages/silver/quarantine-table.ts';
import { TIC_EXAMPLES } from '../helpers/fixtures.ts';
import { tempDir } from '../helpers/lake.ts';

const BIN = join(import.meta.dirname, '../../bin/sluice.js');

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

/** Writes a source's tables (one SELECT each) and commits them as its current version `v1`. */
async function writeSource(lakeDir: string, dataset: string, source: string, tables: Record<string, string>) {
  const keys: Record<string, string[]> = {};
  for (const [table, select] of Object.entries(tables)) {
    const key = `silver/${dataset}/${table}/source=${source}/version=v1/build=b/part-00000.parquet`;
    keys[table] = [key];
    await writeParquet(lakeDir, key, select);
  }
  const record: SourceVersionRecord = {
    commitVersion: 1,
    dataset,
    sourceId: source,
    version: 'v1',
    sha256: '0'.repeat(64),
    uri: `/data/${source}.json`,
    size: 1,
    runId: `${source}-00000000`,
    bronzeManifestKey: 'bronze/x/_manifest.json',
    datasetConfigSha256: 'b'.repeat(64),
    tables: keys,
    committedAt: '2026-01-01T00:00:00.000Z',
    seenAs: [],
  };
  await commitSourceVersion(new FileObjectStore(lakeDir), record, undefined);
}

describe('Function: openLakeQuery', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;

  beforeAll(async () => {
    tmp = await tempDir('sluice-lake-query-');
    const lake = tmp.dir;
    await writeSource(lake, 'tic-in-network', 'a', {
      rates: `SELECT 'C1' AS code, 12.5::DOUBLE AS rate, DATE '2025-01-31' AS expires, ['26', 'TC'] AS modifiers,
              9007199254740993::BIGINT AS big, 1::BIGINT AS n`,
      // Columns named like the folders' `key=value` segments keep their own values.
      providers: `SELECT 1 AS npi, '2.0.0' AS version, 'inline' AS source`,
    });
    // A later source with a column the first lacks: the view reads both by name.
    await writeSource(lake, 'tic-in-network', 'b', {
      rates: `SELECT 'C2' AS code, 3.0::DOUBLE AS rate, NULL::DATE AS expires, []::VARCHAR[] AS modifiers,
              NULL::BIGINT AS big, 2::BIGINT AS n, 'new' AS added`,
    });
    await writeSource(lake, 'other-ds', 'a', {
      rates: `SELECT 'X' AS code`,
      _quarantine: `SELECT 'r1' AS rule_id`,
    });
    // Files no commit record names are not read: a run still writing, failed or killed.
    await writeParquet(
      lake,
      'silver/tic-in-network/rates/source=c/version=v1/build=b/part-00000.parquet',
      `SELECT 'UNCOMMITTED' AS code`,
    );
    await mkdir(join(lake, 'silver/other-ds/_manifests'), { recursive: true });
  });
  afterAll(async () => tmp.cleanup());

  it('creates a view per table as <dataset>__<table>, and <table> alone when no other dataset has it', async () => {
    const lake = await openLakeQuery(tmp.dir);
    try {
      expect(lake.views()).toEqual([
        '_quarantine',
        '_quarantine_history',
        'other_ds___quarantine',
        'other_ds___quarantine_history',
        'other_ds__rates',
        'other_ds__rates_history',
        'providers',
        'providers_history',
        'tic_in_network__providers',
        'tic_in_network__providers_history',
        'tic_in_network__rates',
        'tic_in_network__rates_history',
      ]);
      expect(await lake.query('SELECT npi, version, source FROM providers')).toEqual({
        columns: ['npi', 'version', 'source'],
        rows: [[1, '2.0.0', 'inline']],
      });
      await expect(lake.query('SELECT * FROM rates')).rejects.toThrow(InvalidQueryError);
    } finally {
      await lake.close();
    }
  });

  it('reads every file of a table by name and returns plain values', async () => {
    const lake = await openLakeQuery(tmp.dir);
    try {
      const result = await lake.query(
        `SELECT code, rate, expires, modifiers, big, added, sum(n) OVER () AS total, 1.50::DECIMAL(5, 2) AS dec
         FROM tic_in_network__rates ORDER BY code`,
      );
      expect(result.columns).toEqual([
        'code',
        'rate',
        'expires',
        'modifiers',
        'big',
        'added',
        'total',
        'dec',
      ]);
      expect(result.rows).toEqual([
        ['C1', 12.5, '2025-01-31', ['26', 'TC'], '9007199254740993', null, 3, 1.5],
        ['C2', 3, null, [], null, 'new', 3, 1.5],
      ]);
      expect(() => JSON.stringify(result.rows)).not.toThrow();
    } finally {
      await lake.close();
    }
  });

  it('returns a DECIMAL as a number only when the number is its exact value, else as its exact digits', async () => {
    // DECIMALs come from SQL (a sum of a DECIMAL cast is DECIMAL(38, s)): as a double they lost digits,
    // 0.1::DECIMAL(38, 30) even came back as 0.09999999999999999.
    const lake = await openLakeQuery(tmp.dir);
    try {
      const result = await lake.query(
        `SELECT 1.50::DECIMAL(5, 2) AS price, -0.07::DECIMAL(18, 2) AS refund, 0.1::DECIMAL(38, 30) AS share,
                12345678901234567.89::DECIMAL(38, 2) AS total, 123456789.123456789::DECIMAL(18, 9) AS rate,
                sum(n::DECIMAL(18, 2)) AS n_sum
         FROM tic_in_network__rates`,
      );
      expect(result.rows).toEqual([[1.5, -0.07, 0.1, '12345678901234567.89', '123456789.123456789', 3]]);
    } finally {
      await lake.close();
    }
  });

  it('returns a DOUBLE that is not finite as its name, which JSON would have made null', async () => {
    const lake = await openLakeQuery(tmp.dir);
    try {
      const result = await lake.query(
        `SELECT rate / 0.0 AS up, -rate / 0.0 AS down, 'nan'::DOUBLE AS nan, [rate / 0.0] AS list, NULL::DOUBLE AS none
         FROM tic_in_network__rates WHERE code = 'C1'`,
      );
      expect(JSON.parse(JSON.stringify(result.rows))).toEqual([
        ['Infinity', '-Infinity', 'NaN', ['Infinity'], null],
      ]);
    } finally {
      await lake.close();
    }
  });

  it('reports bad SQL with DuckDB’s message', async () => {
    const lake = await openLakeQuery(tmp.dir);
    try {
      await expect(lake.query('SELECT nope FROM providers')).rejects.toThrow(/nope/);
    } finally {
      await lake.close();
    }
  });

  it('opens a lake without silver tables, with no views', async () => {
    const empty = await tempDir('sluice-lake-query-empty-');
    const lake = await openLakeQuery(empty.dir);
    expect(lake.views()).toEqual([]);
    expect((await lake.query('SELECT 42 AS answer')).rows).toEqual([[42]]);
    await lake.close();
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

describe('openLakeQuery: a table no source has rows in', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  beforeAll(async () => {
    tmp = await tempDir('sluice-lake-empty-');
  });
  afterAll(async () => tmp.cleanup());

  it('is a view of no rows with the columns its files would have, never "does not exist"', async () => {
    // The CMS fee-for-service sample has no bundled codes and no broken rule: two tables without rows.
    const lake = join(tmp.dir, 'lake');
    const sample = join(TIC_EXAMPLES, 'in-network-rates-fee-for-service-single-plan-sample.json');
    const run = spawnSync(process.execPath, [
      BIN,
      'run',
      sample,
      '-d',
      'tic-in-network',
      '--lake',
      lake,
      '-q',
    ]);
    expect(run.status, String(run.stderr)).toBe(0);
    const query = await openLakeQuery(lake);
    try {
      for (const table of ['contained_codes', '_quarantine']) {
        expect(query.views()).toContain(table);
        expect(query.views()).toContain(`tic_in_network__${table}`);
        expect(query.views()).toContain(`${table}_history`);
        expect((await query.query(`SELECT count(*) AS n FROM ${table}`)).rows).toEqual([[0]]);
        expect((await query.query(`SELECT count(*) AS n FROM ${table}_history`)).rows).toEqual([[0]]);
        const spec = [...ticInNetworkSilver.tables, quarantineTable].find((t) => t.name === table)!;
        const described = await query.query(`SELECT column_name, column_type FROM (DESCRIBE ${table})`);
        expect(described.rows).toEqual(storedColumns(spec).map((c) => [c.name, c.type]));
      }
      // A table with rows still reads its files.
      expect((await query.query('SELECT count(*) FROM negotiated_prices')).rows[0]![0]).toBeGreaterThan(0);
    } finally {
      await query.close();
    }
  });
});
